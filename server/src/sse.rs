//! Server-Sent Events: a spec-correct incremental parser and the frame encoder.
//!
//! The parser follows the WHATWG "event stream interpretation": `\n`, `\r\n`
//! and `\r` line ends, a leading BOM, comments (`:`), `event`/`data`/`id`/
//! `retry` fields, multi-line `data`, and frames split at any byte across
//! reads. A frame without a `data` line (Dify's bare `event: ping`) is not an
//! event and is never dispatched. The parser does no I/O: bytes in, events out.
//! The server uses it to read the upstream LLM stream; the harness uses it to
//! read the server's stream.

/// A bare keep-alive frame, as Dify sends first and after each silent 10 s.
pub const PING_FRAME: &[u8] = b"event: ping\n\n";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `None` when absent (the spec's default `message`).
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The last event id seen on the stream so far, if any.
    pub id: Option<String>,
}

/// One dispatched event, borrowed from the parser's buffers: the hot paths
/// (the relay's upstream, the driver's downstream) read it without an
/// allocation per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEventRef<'a> {
    pub event: Option<&'a str>,
    pub data: &'a str,
    pub id: Option<&'a str>,
}

impl SseEventRef<'_> {
    pub fn to_owned_event(&self) -> SseEvent {
        SseEvent { event: self.event.map(str::to_owned), data: self.data.to_owned(), id: self.id.map(str::to_owned) }
    }
}

/// What a parser with limits met: a line or a frame's data above its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Line(usize),
    Frame(usize),
}

/// Incremental SSE parser.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The frame's data and event type so far; cleared, not freed, per event.
    data: String,
    has_data: bool,
    event: String,
    has_event: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
    /// The previous chunk ended on `\r`: a `\n` starting the next one belongs to it.
    skip_lf: bool,
    started: bool,
    n_frames: u64,
    max_line: usize,
    max_frame: usize,
    overflow: Option<Overflow>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limits(usize::MAX, usize::MAX)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that stops at a line longer than `max_line` bytes or a
    /// frame whose data passes `max_frame` bytes: it frees its buffers,
    /// ignores everything after, and says so in [`SseParser::overflow`]. A
    /// stream that never ends its line cannot grow it without bound.
    pub fn with_limits(max_line: usize, max_frame: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            event: String::new(),
            has_event: false,
            last_id: None,
            retry_ms: None,
            skip_lf: false,
            started: false,
            n_frames: 0,
            max_line,
            max_frame,
            overflow: None,
        }
    }

    /// The limit the stream broke, if it broke one.
    pub fn overflow(&self) -> Option<Overflow> {
        self.overflow
    }

    fn overflowed(&mut self, overflow: Overflow) {
        self.overflow = Some(overflow);
        self.line = Vec::new();
        self.data = String::new();
        self.event = String::new();
        self.has_data = false;
        self.has_event = false;
    }

    /// Feeds bytes; calls `on_event` for every event they complete.
    pub fn push(&mut self, bytes: &[u8], mut on_event: impl FnMut(SseEvent)) {
        self.push_ref(bytes, |event| on_event(event.to_owned_event()));
    }

    /// As `push`, lending each event instead of handing over owned strings.
    pub fn push_ref(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(SseEventRef<'_>)) {
        if self.overflow.is_some() {
            return;
        }
        if !self.started && !bytes.is_empty() {
            // The BOM may itself be split across reads; only strip it whole.
            if self.line.len() + bytes.len() < 3 && b"\xEF\xBB\xBF".starts_with(&[&self.line[..], bytes].concat()) {
                self.line.extend_from_slice(bytes);
                return;
            }
            self.started = true;
            if !self.line.is_empty() {
                let pending = std::mem::take(&mut self.line);
                let rest = [&pending[..], bytes].concat();
                let rest = rest.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&rest).to_vec();
                self.push_ref(&rest, on_event);
                return;
            }
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        // An empty read leaves a `\r` at the end of the last one still
        // waiting for its `\n`.
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', bytes) {
            // A whole frame of one `data:` line and its blank line, with
            // nothing pending (nearly every frame of an LLM stream): its data
            // is lent straight from `bytes`, not copied into the frame's
            // buffer. What it dispatches is what the lines below would.
            if bytes.get(pos..pos + 2) == Some(b"\n\n")
                && self.line.is_empty()
                && !self.has_data
                && !self.has_event
                && pos <= self.max_line
                && let Some(value) = bytes[..pos].strip_prefix(b"data:")
                && let value = value.strip_prefix(b" ").unwrap_or(value)
                && value.len() <= self.max_frame
                && let Ok(data) = std::str::from_utf8(value)
            {
                self.n_frames += 1;
                on_event(SseEventRef { event: None, data, id: self.last_id.as_deref() });
                bytes = &bytes[pos + 2..];
                continue;
            }
            let is_cr = bytes[pos] == b'\r';
            if self.line.len() + pos > self.max_line {
                return self.overflowed(Overflow::Line(self.max_line));
            }
            if self.line.is_empty() {
                self.process_line(&bytes[..pos], &mut on_event);
            } else {
                self.line.extend_from_slice(&bytes[..pos]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, &mut on_event);
                self.line = line;
                self.line.clear();
            }
            if self.data.len() > self.max_frame {
                return self.overflowed(Overflow::Frame(self.max_frame));
            }
            bytes = &bytes[pos + 1..];
            if is_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        if self.line.len() + bytes.len() > self.max_line {
            return self.overflowed(Overflow::Line(self.max_line));
        }
        self.line.extend_from_slice(bytes);
    }

    /// The `retry:` reconnection time last announced by the stream, in ms.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Frames closed by a blank line so far, events or not (pings count here).
    pub fn n_frames(&self) -> u64 {
        self.n_frames
    }

    /// True when bytes of an unfinished line or frame are buffered: a stream
    /// that ends now was cut mid-frame.
    pub fn has_partial_frame(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.has_event
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEventRef<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                // Valid UTF-8, nearly always: checked in one pass, without
                // the lossy decoder's per-chunk iteration.
                match std::str::from_utf8(value) {
                    Ok(text) => self.data.push_str(text),
                    Err(_) => self.data.push_str(&String::from_utf8_lossy(value)),
                }
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
                self.has_event = true;
            }
            b"id" if !value.contains(&0) => self.last_id = Some(String::from_utf8_lossy(value).into_owned()),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEventRef<'_>)) {
        self.n_frames += 1;
        let has_event = std::mem::take(&mut self.has_event);
        if self.has_data {
            self.has_data = false;
            on_event(SseEventRef { event: has_event.then_some(self.event.as_str()), data: &self.data, id: self.last_id.as_deref() });
        }
        self.data.clear();
        self.event.clear();
    }
}

/// Appends one `data:` frame holding `json` (which must not contain a line
/// break; compact JSON never does).
pub fn encode_data_frame(json: &[u8], out: &mut Vec<u8>) {
    out.reserve(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(chunks: &[&[u8]], expect: &[(&str, Option<&str>)]) {
        let mut parser = SseParser::new();
        let mut got = Vec::new();
        for chunk in chunks {
            parser.push(chunk, |e| got.push((e.data, e.event)));
        }
        let got: Vec<(&str, Option<&str>)> = got.iter().map(|(d, e)| (d.as_str(), e.as_deref())).collect();
        assert_eq!(got, expect);
    }

    /// However a stream is cut into reads, the same events come out: whole
    /// frames in one read (lent from it) and frames split across reads (the
    /// line buffer) agree, ids, types, comments and line ends included.
    #[test]
    fn every_split_of_a_stream_gives_the_same_events() {
        let stream: &[u8] = b"\xEF\xBB\xBFdata: a\n\ndata:b\n\nid: 7\ndata: c\n\nevent: e\ndata: d\n\n: note\ndata: x\ndata: y\n\ndata: \xC3\n\ndata: r\r\n\r\ndata\n\ndata: z\n\n";
        let parse = |cuts: &[usize]| {
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            let mut from = 0;
            for &cut in cuts.iter().chain([&stream.len()]) {
                parser.push(&stream[from..cut], |e| events.push(e));
                from = cut;
            }
            (events, parser.n_frames())
        };
        let whole = parse(&[]);
        assert_eq!(whole.0.len(), 9);
        assert_eq!(whole.0[2].id.as_deref(), Some("7"));
        assert_eq!(whole.0[5].data, "\u{FFFD}");
        for a in 0..=stream.len() {
            assert_eq!(parse(&[a]), whole, "cut at {a}");
            for b in a..=stream.len() {
                assert_eq!(parse(&[a, b]), whole, "cuts at {a} and {b}");
            }
        }
        // The limits hold for lent frames too.
        let mut parser = SseParser::with_limits(1024, 3);
        parser.push_ref(b"data: abcd\n\n", |_| panic!("over the frame limit"));
        assert_eq!(parser.overflow(), Some(Overflow::Frame(3)));
        let mut parser = SseParser::with_limits(8, 1024);
        parser.push_ref(b"data: abcd\n\n", |_| panic!("over the line limit"));
        assert_eq!(parser.overflow(), Some(Overflow::Line(8)));
    }

    #[test]
    fn line_ends_of_every_kind() {
        check(&[b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\n"], &[("a", None), ("b", None), ("c", None), ("d", None)]);
    }

    #[test]
    fn cr_lf_split_across_reads_is_one_line_end() {
        check(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"], &[("a", None), ("b", None)]);
    }

    #[test]
    fn ping_and_comments_are_not_events() {
        check(&[b"event: ping\n\n: keep-alive\n\ndata: x\n\n"], &[("x", None)]);
    }

    #[test]
    fn an_event_type_belongs_to_its_frame_only() {
        check(&[b"event: x\ndata: a\n\ndata: b\n\nevent: y\n", b"data: c\n\n"], &[("a", Some("x")), ("b", None), ("c", Some("y"))]);
        let mut parser = SseParser::new();
        let mut seen = Vec::new();
        parser.push_ref(b"event: e\ndata: 1\n\ndata: 2\n\n", |e| seen.push((e.event.map(str::to_owned), e.data.to_owned())));
        assert_eq!(seen, [(Some("e".to_owned()), "1".to_owned()), (None, "2".to_owned())]);
    }

    #[test]
    fn multi_line_data_and_event_type() {
        check(&[b"event: delta\ndata: one\ndata:two\ndata\n\n"], &[("one\ntwo\n", Some("delta"))]);
    }

    #[test]
    fn unfinished_frame_is_not_dispatched() {
        let mut parser = SseParser::new();
        let mut n = 0;
        parser.push(b"data: x\n", |_| n += 1);
        assert_eq!(n, 0);
        assert!(parser.has_partial_frame());
    }

    #[test]
    fn bom_split_across_reads_is_stripped() {
        check(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"], &[("x", None)]);
    }

    #[test]
    fn id_and_retry_fields() {
        let mut parser = SseParser::new();
        let mut ids = Vec::new();
        parser.push(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nretry: x1\n\n", |e| ids.push(e.id));
        assert_eq!(ids, [Some("7".to_owned()), Some("7".to_owned())]);
        assert_eq!(parser.retry_ms(), Some(1500));
        assert_eq!(parser.n_frames(), 3);
    }

    #[test]
    fn a_line_or_frame_past_its_limit_stops_the_parser_and_frees_it() {
        // An endless line, split across reads, and one in a single read.
        let mut parser = SseParser::with_limits(64, 256);
        let mut n = 0;
        parser.push(b"data: ok\n\n", |_| n += 1);
        for _ in 0..10 {
            parser.push(&[b'x'; 20], |_| n += 1);
        }
        assert_eq!(parser.overflow(), Some(Overflow::Line(64)));
        assert_eq!(parser.line.capacity(), 0, "the line is freed");
        parser.push(b"\n\ndata: later\n\n", |_| n += 1);
        assert_eq!(n, 1, "nothing is parsed after the overflow");
        let mut parser = SseParser::with_limits(64, 256);
        parser.push(&[b'y'; 100], |_| {});
        assert_eq!(parser.overflow(), Some(Overflow::Line(64)));
        let mut parser = SseParser::with_limits(64, 256);
        parser.push(&[&[b'z'; 65][..], b"\n"].concat(), |_| {});
        assert_eq!(parser.overflow(), Some(Overflow::Line(64)));
        // Short data lines and no blank line: the frame grows past its limit.
        let mut parser = SseParser::with_limits(64, 256);
        for _ in 0..30 {
            parser.push(b"data: 0123456789\n", |_| n += 1);
        }
        assert_eq!(parser.overflow(), Some(Overflow::Frame(256)));
        assert_eq!(parser.data.capacity(), 0, "the frame is freed");
        // Within the limits, nothing changes.
        let mut parser = SseParser::with_limits(64, 256);
        let mut got = Vec::new();
        parser.push(b"data: a\ndata: b\n\n", |e| got.push(e.data));
        assert_eq!((got, parser.overflow()), (vec!["a\nb".to_owned()], None));
    }
}
