//! The LLM node's upstream: an OpenAI-compatible streaming chat completion
//! through one shared endpoint of kept-alive connections (`upstream.rs`),
//! read by the task that serves the run's client. Each `delta.content` is handed
//! out as soon as its SSE frame is complete; nothing buffers the answer.
//! Every failure (connect, status, timeout, cut or malformed stream) is an
//! `LlmError` whose text ends up in Dify's `node_finished.error`.

use super::UpstreamError;
use super::chunk::Chunk;
pub use super::chunk::TokenUsage;
use super::client::{Endpoint, Response};
use crate::busy_poll::BusyPoll;
use crate::sse::{Overflow, SseParser};
use http::Uri;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How much of an upstream error body is quoted in the node's error.
const MAX_ERROR_BODY_BYTES: usize = 1024;
/// Kept-alive upstream connections at most.
const MAX_IDLE_CONNECTIONS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("[openai] Connection error: {0}")]
    Connect(String),
    #[error("[openai] Error code: {status} - {body}")]
    Status { status: u16, body: String },
    #[error("[openai] Request timed out: no {what} within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("[openai] Stream ended before the completion finished")]
    Truncated,
    #[error("[openai] Malformed stream chunk: {0}")]
    Malformed(String),
    #[error("[openai] Stream read error: {0}")]
    Read(String),
    #[error(
        "[openai] The provider answered a streaming request with a whole completion (Content-Type: application/json), not an event stream: {body}"
    )]
    NotStreaming { body: String },
    #[error("[openai] Stream too large: {what} over {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
}

impl From<UpstreamError> for LlmError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Connect(e) => LlmError::Connect(e),
            other => LlmError::Read(other.to_string()),
        }
    }
}

/// Where and how the LLM node calls its provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The provider's base URL, e.g. `http://127.0.0.1:5004/v1`.
    pub base_url: String,
    pub api_key: String,
    pub connect_timeout: Duration,
    /// From sending the request to the first content delta.
    pub first_token_timeout: Duration,
    /// The longest silence allowed between two stream reads after that.
    pub idle_timeout: Duration,
    /// The longest a whole completion may take, from its request on.
    pub max_completion_time: Duration,
    /// The longest SSE line an upstream may send, in bytes.
    pub max_line_bytes: usize,
    /// The most data one SSE event may carry, in bytes.
    pub max_event_bytes: usize,
    /// The most body bytes one completion may send.
    pub max_completion_bytes: usize,
    /// Time each first token for `GET /metrics`.
    pub record_metrics: bool,
}

/// The shared upstream client: one endpoint and its kept-alive connections
/// (`upstream.rs`).
#[derive(Debug, Clone)]
pub struct Provider {
    endpoint: Arc<Endpoint>,
    settings: ProviderSettings,
    /// With `--busy-poll`: every upstream read keeps the pollers awake.
    busy_poll: Option<Arc<BusyPoll>>,
}

impl Provider {
    pub fn new(settings: ProviderSettings) -> Result<Self, String> {
        let base = settings.base_url.trim_end_matches('/');
        let uri: Uri = format!("{base}/chat/completions")
            .parse()
            .map_err(|e| format!("provider base URL {:?} is not a valid URL: {e}", settings.base_url))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("provider base URL {:?} must be http:// (TLS is not supported)", settings.base_url));
        }
        let auth = format!("Bearer {}", settings.api_key);
        if http::HeaderValue::from_str(&auth).is_err() {
            return Err("provider API key holds characters not allowed in a header".to_owned());
        }
        let headers = [("content-type", "application/json"), ("accept", "text/event-stream"), ("authorization", auth.as_str())];
        let endpoint = Endpoint::new(&uri, &headers, settings.connect_timeout, MAX_IDLE_CONNECTIONS)
            .map_err(|e| format!("provider base URL {:?}: {e}", settings.base_url))?;
        Ok(Self { endpoint: Arc::new(endpoint), settings, busy_poll: None })
    }

    /// Reports each upstream read to `busy_poll`'s pollers.
    pub(crate) fn with_busy_poll(mut self, busy_poll: Option<Arc<BusyPoll>>) -> Self {
        self.busy_poll = busy_poll;
        self
    }

    /// Sends a streaming chat completion; the stream yields content deltas.
    pub async fn stream(&self, body: Vec<u8>) -> Result<CompletionStream<'_>, LlmError> {
        let deadline = Instant::now() + self.settings.first_token_timeout;
        let mut response = tokio::time::timeout_at(deadline, self.endpoint.post(&body))
            .await
            .map_err(|_| LlmError::Timeout { what: "response", after: self.settings.first_token_timeout })??;
        let status = response.head.status;
        if !(200..300).contains(&status) {
            let text = read_error_body(&mut response, deadline).await;
            return Err(LlmError::Status { status, body: text });
        }
        if response.head.json {
            let body = read_error_body(&mut response, deadline).await;
            return Err(LlmError::NotStreaming { body });
        }
        let settings = &self.settings;
        let mut stream = CompletionStream {
            response,
            decoder: UpstreamDecoder::with_limits(settings.max_line_bytes, settings.max_event_bytes, settings.max_completion_bytes),
            first_token_deadline: Some(deadline),
            end_deadline: Instant::now() + settings.max_completion_time,
            settings: &self.settings,
            busy_poll: self.busy_poll.as_deref(),
        };
        // The head's read may have brought the first events too.
        let CompletionStream { response, decoder, .. } = &mut stream;
        response.decode_buffered(|data| decoder.feed(data))?;
        Ok(stream)
    }
}

/// The request body of one chat completion.
#[derive(Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<ChatMessage<'a>>,
    pub stream: bool,
    pub stream_options: StreamOptions,
    pub user: &'a str,
    #[serde(flatten)]
    pub params: &'a serde_json::Map<String, serde_json::Value>,
}

impl ChatRequest<'_> {
    /// The request's JSON, byte for byte what serde writes for it (a test
    /// checks), its fixed keys by hand: serde's path through the flattened
    /// parameters cost more than the request's own text.
    pub fn to_body(&self) -> Vec<u8> {
        fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
            serde_json::to_writer(&mut *out, value).expect("serialize to Vec");
        }
        let text_len: usize = self.messages.iter().map(|m| m.role.len() + m.content.len() + 24).sum();
        let mut out = Vec::with_capacity(128 + self.model.len() + self.user.len() + text_len);
        out.extend_from_slice(b"{\"model\":");
        json(&mut out, self.model);
        out.extend_from_slice(b",\"messages\":[");
        for (i, message) in self.messages.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"role\":");
            json(&mut out, message.role);
            out.extend_from_slice(b",\"content\":");
            json(&mut out, &message.content);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"stream\":");
        out.extend_from_slice(if self.stream { b"true" } else { b"false" });
        out.extend_from_slice(b",\"stream_options\":{\"include_usage\":");
        out.extend_from_slice(if self.stream_options.include_usage { b"true" } else { b"false" });
        out.extend_from_slice(b"},\"user\":");
        json(&mut out, self.user);
        for (key, value) in self.params {
            out.push(b',');
            json(&mut out, key);
            out.push(b':');
            json(&mut out, value);
        }
        out.push(b'}');
        out
    }
}

#[derive(Serialize)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub content: String,
}

#[derive(Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

/// An upstream stream being read, by whoever polls it: no task of its own.
pub struct CompletionStream<'p> {
    response: Response<'p>,
    decoder: UpstreamDecoder,
    /// Until the first content arrives, reads share this one deadline.
    first_token_deadline: Option<Instant>,
    /// No read goes past this: the completion's whole time.
    end_deadline: Instant,
    settings: &'p ProviderSettings,
    busy_poll: Option<&'p BusyPoll>,
}

impl CompletionStream<'_> {
    /// The next non-empty content delta, `None` once the stream finished well.
    pub async fn next_delta(&mut self) -> Result<Option<String>, LlmError> {
        loop {
            if let Some(delta) = self.decoder.deltas.pop_front() {
                if let Some(deadline) = self.first_token_deadline.take()
                    && self.settings.record_metrics
                {
                    // The request went out `first_token_timeout` before its deadline.
                    let sent = deadline - self.settings.first_token_timeout;
                    crate::metrics::METRICS.upstream_ttft.observe(sent.elapsed().as_secs_f64());
                }
                return Ok(Some(delta));
            }
            if self.decoder.done {
                return self.body_end().await.map(|()| None);
            }
            if self.response.is_done() {
                if self.decoder.finish_reason.is_some() {
                    self.decoder.done = true;
                    continue;
                }
                return Err(LlmError::Truncated);
            }
            let (deadline, what, after) = match self.first_token_deadline {
                Some(d) => (d, "first token", self.settings.first_token_timeout),
                None => (Instant::now() + self.settings.idle_timeout, "stream data", self.settings.idle_timeout),
            };
            let (deadline, what, after) = if self.end_deadline < deadline {
                (self.end_deadline, "end of the completion", self.settings.max_completion_time)
            } else {
                (deadline, what, after)
            };
            tokio::time::timeout_at(deadline, self.response.read()).await.map_err(|_| LlmError::Timeout { what, after })??;
            if let Some(poll) = self.busy_poll {
                poll.active();
            }
            let Self { response, decoder, .. } = self;
            response.decode_buffered(|data| decoder.feed(data))?;
        }
    }

    /// After `[DONE]`: the body's framing must end too. A close before the
    /// length or the last chunk it promised is a cut answer. The end nearly
    /// always came in the read that brought `[DONE]`; an upstream that holds
    /// its body open after it is waited for briefly, then left (its
    /// connection is not reused).
    async fn body_end(&mut self) -> Result<(), LlmError> {
        const AFTER_DONE: Duration = Duration::from_secs(1);
        let deadline = Instant::now() + AFTER_DONE.min(self.settings.idle_timeout);
        while !self.response.is_done() {
            match tokio::time::timeout_at(deadline, self.response.read()).await {
                Ok(read) => {
                    read?;
                }
                Err(_) => return Ok(()),
            }
            self.response.decode_buffered(|_| Ok::<(), UpstreamError>(()))?;
        }
        Ok(())
    }

    /// A delta already decoded from the last upstream read, if any (one read
    /// often holds several `data:` events); never waits.
    pub fn ready_delta(&mut self) -> Option<String> {
        self.decoder.deltas.pop_front()
    }

    pub fn finish_reason(&self) -> Option<&str> {
        self.decoder.finish_reason.as_deref()
    }

    pub fn usage(&self) -> Option<TokenUsage> {
        self.decoder.usage
    }
}

/// Turns upstream bytes into content deltas: SSE framing, `[DONE]`, and each
/// `chat.completion.chunk`'s content, finish reason and usage. No I/O.
#[derive(Debug)]
pub struct UpstreamDecoder {
    parser: SseParser,
    deltas: VecDeque<String>,
    finish_reason: Option<String>,
    usage: Option<TokenUsage>,
    done: bool,
    received: usize,
    max_bytes: usize,
}

impl Default for UpstreamDecoder {
    fn default() -> Self {
        Self::with_limits(usize::MAX, usize::MAX, usize::MAX)
    }
}

impl UpstreamDecoder {
    /// A decoder that fails (`LlmError::TooLarge`) past a line of
    /// `max_line`, an event of `max_event` or a body of `max_bytes` bytes.
    pub fn with_limits(max_line: usize, max_event: usize, max_bytes: usize) -> Self {
        Self {
            parser: SseParser::with_limits(max_line, max_event),
            deltas: VecDeque::new(),
            finish_reason: None,
            usage: None,
            done: false,
            received: 0,
            max_bytes,
        }
    }

    /// The next decoded non-empty content delta.
    pub fn pop_delta(&mut self) -> Option<String> {
        self.deltas.pop_front()
    }

    /// Decodes `data`; a chunk that is not JSON is an error.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), LlmError> {
        self.received = self.received.saturating_add(data.len());
        if self.received > self.max_bytes {
            return Err(LlmError::TooLarge { what: "the completion", limit: self.max_bytes });
        }
        let mut failure = None;
        let Self { parser, deltas, finish_reason, usage, done, .. } = self;
        parser.push_ref(data, |event| {
            if failure.is_some() || *done {
                return;
            }
            if event.data == "[DONE]" {
                *done = true;
                return;
            }
            match Chunk::parse(event.data) {
                Ok(chunk) => {
                    if let Some(u) = chunk.usage {
                        *usage = Some(u);
                    }
                    for choice in chunk.choices {
                        if let Some(content) = choice.delta.and_then(|d| d.content).filter(|c| !c.is_empty()) {
                            deltas.push_back(content.into_owned());
                        }
                        if let Some(reason) = choice.finish_reason {
                            *finish_reason = Some(reason.into_owned());
                        }
                    }
                }
                Err(e) => {
                    let mut shown: String = event.data.chars().take(80).collect();
                    if shown.len() < event.data.len() {
                        shown.push('…');
                    }
                    failure = Some(LlmError::Malformed(format!("{e} in {shown:?}")));
                }
            }
        });
        match parser.overflow() {
            Some(Overflow::Line(limit)) => return Err(LlmError::TooLarge { what: "an SSE line", limit }),
            Some(Overflow::Frame(limit)) => return Err(LlmError::TooLarge { what: "an SSE event", limit }),
            None => {}
        }
        failure.map_or(Ok(()), Err)
    }
}

async fn read_error_body(response: &mut Response<'_>, deadline: Instant) -> String {
    let mut buf = Vec::new();
    loop {
        let _ = response.decode_buffered(|data| {
            buf.extend_from_slice(data);
            Ok::<(), UpstreamError>(())
        });
        if buf.len() >= MAX_ERROR_BODY_BYTES || response.is_done() {
            break;
        }
        match tokio::time::timeout_at(deadline, response.read()).await {
            Ok(Ok(true)) => {}
            _ => break,
        }
    }
    buf.truncate(MAX_ERROR_BODY_BYTES);
    String::from_utf8_lossy(&buf).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written request body is byte for byte serde's, whatever
    /// the prompts, the user and the parameters hold.
    #[test]
    fn the_request_body_is_what_serde_writes() {
        let params =
            [serde_json::json!({}), serde_json::json!({"temperature": 0.7, "max_tokens": 512, "stop": ["\n", "é\"q\""], "model": "dup"})];
        let texts = ["", "What is ML?", "é \"q\" \\ \n\t\u{1}\u{7f} 😀"];
        for params in &params {
            for text in texts {
                for n in 0..3 {
                    let messages: Vec<ChatMessage<'_>> =
                        (0..n).map(|i| ChatMessage { role: if i == 0 { "system" } else { text }, content: text.to_owned() }).collect();
                    for (stream, include_usage) in [(true, true), (false, false)] {
                        let request = ChatRequest {
                            model: text,
                            messages: messages.iter().map(|m| ChatMessage { role: m.role, content: m.content.clone() }).collect(),
                            stream,
                            stream_options: StreamOptions { include_usage },
                            user: text,
                            params: params.as_object().unwrap(),
                        };
                        assert_eq!(String::from_utf8(request.to_body()).unwrap(), serde_json::to_string(&request).unwrap());
                    }
                }
            }
        }
    }

    /// Every choice of a chunk counts, in order, however many there are;
    /// a chunk of none (the usage chunk) or with escapes decodes too.
    #[test]
    fn every_choice_of_a_chunk_is_decoded() {
        let mut decoder = UpstreamDecoder::default();
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}},{\"delta\":{\"content\":\"b\\\"\"}},{\"delta\":{\"content\":\"c\"}}]}\n\n",
            "data: {\"choices\":[]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n",
            "data: [DONE]\n\n",
        );
        decoder.feed(stream.as_bytes()).unwrap();
        let deltas: Vec<String> = std::iter::from_fn(|| decoder.pop_delta()).collect();
        assert_eq!(deltas, ["a", "b\"", "c"]);
        assert_eq!(decoder.finish_reason.as_deref(), Some("stop"));
        assert_eq!(decoder.usage.map(|u| u.total_tokens), Some(7));
        let mut bad = UpstreamDecoder::default();
        assert!(bad.feed(b"data: {\"choices\":{\"delta\":{}}}\n\n").is_err(), "choices must be a list");
    }
}
