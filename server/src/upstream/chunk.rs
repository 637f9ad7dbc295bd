//! One `chat.completion.chunk`: its choices' content and finish reason, and
//! its usage. `Chunk::parse` reads the common chunk by hand and hands every
//! other one to serde, so both paths give the same answer and serde alone
//! decides what is an error and how it is worded.
//!
//! Why by hand: serde's derive for a struct that ignores most of its keys
//! walks every ignored key and value through its visitor machinery, and a
//! relayed stream decodes one chunk per token. The hand path accepts only
//! what it can read exactly as serde would: strings without escapes or
//! control characters, integers for the usage, each known key once, nesting
//! up to `json_scan`'s limit. Anything else (an escaped token, a duplicate key, a
//! syntax error) goes to serde, never to a guess.

use crate::json_scan::Scan;
use serde::Deserialize;
use std::borrow::Cow;

/// A completion's token counts, from its last chunk.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct TokenUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Choices<'a>,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// A chunk's `choices`: nearly always one, kept inline, so a chunk is
/// decoded without allocating a list; any more go to `rest`.
#[derive(Default, Debug, PartialEq)]
pub(super) struct Choices<'a> {
    first: Option<Choice<'a>>,
    rest: Vec<Choice<'a>>,
}

impl<'a> Choices<'a> {
    fn push(&mut self, choice: Choice<'a>) {
        if self.first.is_none() {
            self.first = Some(choice);
        } else {
            self.rest.push(choice);
        }
    }
}

impl<'a> IntoIterator for Choices<'a> {
    type Item = Choice<'a>;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Choice<'a>>, std::vec::IntoIter<Choice<'a>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seq<'a>(std::marker::PhantomData<Choice<'a>>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Seq<'a> {
            type Value = Choices<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of choices")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let mut choices = Choices::default();
                while let Some(choice) = seq.next_element()? {
                    choices.push(choice);
                }
                Ok(choices)
            }
        }
        deserializer.deserialize_seq(Seq(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct Choice<'a> {
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
}

impl<'a> Chunk<'a> {
    /// The chunk in `data`, as `serde_json::from_str` reads it.
    pub fn parse(data: &'a str) -> serde_json::Result<Self> {
        match by_hand(data) {
            Some(chunk) => Ok(chunk),
            None => serde_json::from_str(data),
        }
    }
}

/// The chunk, read by hand, or `None` where serde must decide.
fn by_hand(text: &str) -> Option<Chunk<'_>> {
    let mut scan = Scan::new(text);
    let chunk = chunk(&mut scan)?;
    // serde_json takes trailing whitespace and nothing else.
    scan.peek().is_none().then_some(chunk)
}

fn chunk<'a>(scan: &mut Scan<'a>) -> Option<Chunk<'a>> {
    let mut chunk = Chunk::default();
    let (mut choices, mut usage) = (false, false);
    scan.object(|scan, key| match key {
        "choices" if !choices => {
            choices = true;
            scan.array(|scan| {
                chunk.choices.push(choice(scan)?);
                Some(())
            })
        }
        "usage" if !usage => {
            usage = true;
            chunk.usage = scan.nullable(token_usage)?;
            Some(())
        }
        "choices" | "usage" => None,
        _ => scan.skip(1),
    })?;
    Some(chunk)
}

fn choice<'a>(scan: &mut Scan<'a>) -> Option<Choice<'a>> {
    let mut choice = Choice::default();
    let (mut delta_seen, mut reason) = (false, false);
    scan.object(|scan, key| match key {
        "delta" if !delta_seen => {
            delta_seen = true;
            choice.delta = scan.nullable(delta)?;
            Some(())
        }
        "finish_reason" if !reason => {
            reason = true;
            choice.finish_reason = scan.nullable(Scan::string)?.map(Cow::Borrowed);
            Some(())
        }
        "delta" | "finish_reason" => None,
        _ => scan.skip(3),
    })?;
    Some(choice)
}

fn delta<'a>(scan: &mut Scan<'a>) -> Option<Delta<'a>> {
    let mut delta = Delta::default();
    let mut content = false;
    scan.object(|scan, key| match key {
        "content" if !content => {
            content = true;
            delta.content = scan.nullable(Scan::string)?.map(Cow::Borrowed);
            Some(())
        }
        "content" => None,
        _ => scan.skip(4),
    })?;
    Some(delta)
}

fn token_usage(scan: &mut Scan<'_>) -> Option<TokenUsage> {
    let mut usage = TokenUsage::default();
    let mut seen = [false; 3];
    scan.object(|scan, key| {
        let (slot, field) = match key {
            "prompt_tokens" => (0, &mut usage.prompt_tokens),
            "completion_tokens" => (1, &mut usage.completion_tokens),
            "total_tokens" => (2, &mut usage.total_tokens),
            _ => return scan.skip(2),
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        *field = scan.integer()?;
        Some(())
    })?;
    Some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_serde(data: &str) -> Option<Chunk<'_>> {
        serde_json::from_str(data).ok()
    }

    /// The mock's and OpenAI's usual chunks take the hand path.
    #[test]
    fn the_common_chunks_are_read_by_hand() {
        let chunks = [
            r#"{"id":"chatcmpl-0000002a","object":"chat.completion.chunk","created":1765000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-0000002a","object":"chat.completion.chunk","created":1765000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello "},"finish_reason":null}]}"#,
            r#"{"id":"x","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"system_fingerprint":"fp_1"}"#,
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":32,"total_tokens":44,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            " { \"choices\" : [ { \"delta\" : { \"content\" : \"é ✓\" } } , { \"delta\" : null } ] , \"x\" : [ -1.5e+3 , true , false , { } , [ ] ] } \n",
        ];
        for data in chunks {
            let hand = by_hand(data);
            assert!(hand.is_some(), "{data} should be read by hand");
            assert_eq!(hand, by_serde(data), "{data}");
        }
    }

    /// What the hand path leaves to serde gets serde's answer, error or not.
    #[test]
    fn what_the_hand_path_cannot_read_goes_to_serde() {
        let cases = [
            r#"{"choices":[{"delta":{"content":"a\"b"}}]}"#,
            r#"{"choices":[{"delta":{"content":"\u00e9"}}]}"#,
            r#"{"choices":[],"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[],"usage":{"total_tokens":1.0}}"#,
            r#"{"choices":[],"usage":{"total_tokens":-1}}"#,
            r#"{"choices":[],"usage":{"total_tokens":18446744073709551616}}"#,
            r#"{"choices":[],"usage":{"total_tokens":01}}"#,
            r#"{"choices":[],}"#,
            r#"{"choices":[]} x"#,
            r#"{"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"choices":[]}"#,
            "{\"choices\":[{\"delta\":{\"content\":\"a\tb\"}}]}",
            r#"[]"#,
            "",
        ];
        for data in cases {
            assert!(by_hand(data).is_none(), "{data} should go to serde");
            let parsed = Chunk::parse(data);
            let serde = serde_json::from_str::<Chunk<'_>>(data);
            assert_eq!(parsed.as_ref().ok(), serde.as_ref().ok(), "{data}");
            assert_eq!(parsed.err().map(|e| e.to_string()), serde.err().map(|e| e.to_string()), "{data}");
        }
    }

    /// Over every one-byte change of a set of chunks (deleted, doubled, or
    /// replaced by a byte JSON cares about), whatever the hand path reads,
    /// serde reads the same; the hand path never accepts what serde refuses.
    #[test]
    fn the_hand_path_agrees_with_serde_on_mutated_chunks() {
        let seeds = [
            r#"{"id":"c-1","object":"chat.completion.chunk","created":17,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"ab c"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"},{"delta":{"content":"z"}}],"usage":{"prompt_tokens":3,"completion_tokens":40,"total_tokens":43},"n":[1.25e-2,-0,true,false,null,{"k":[]}]}"#,
        ];
        let (mut read_by_hand, mut total) = (0, 0);
        for data in seeds.iter().flat_map(|seed| crate::json_scan::one_byte_changes(seed)) {
            total += 1;
            if let Some(hand) = by_hand(&data) {
                read_by_hand += 1;
                assert_eq!(Some(hand), by_serde(&data), "{data}");
            }
        }
        // The comparison has teeth only if the hand path read many of them.
        assert!(read_by_hand > total / 10, "{read_by_hand} of {total} read by hand");
    }
}
