//! A JSON scanner for the hand-read fast paths (`upstream::chunk`,
//! `http::request`): it reads exactly what serde reads the same way and
//! returns `None` for everything else, so the caller hands that text to
//! serde, which alone decides what is an error and how it is worded.
//! It accepts strings without escapes or control characters (borrowed),
//! numbers by JSON's grammar (skipped) or as `u64`s, and nesting up to
//! `MAX_DEPTH`.

/// Nesting `skip` passes through; deeper values go to serde, whose own
/// limit (128) then applies.
const MAX_DEPTH: u32 = 32;

/// A scanner over JSON text: every method returns `None` where serde must decide.
pub(crate) struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after JSON whitespace, not taken.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
        self.bytes().get(self.at).copied()
    }

    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// `null` as `None`, else what `read` reads.
    pub fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// An object, each key and the scanner (at the key's value) given to `field`.
    pub fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string with no escape and no control character, borrowed.
    pub fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = string_end(&self.bytes()[start..])?;
        if self.bytes()[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends sit next to an ASCII quote: char boundaries.
        Some(&self.text[start..start + len])
    }

    pub fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.peek()?;
        let end = self.at + word.len();
        (self.bytes().get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A non-negative integer that fits a `u64`, as serde reads one into it.
    pub fn integer(&mut self) -> Option<u64> {
        self.peek()?;
        let digits = self.bytes()[self.at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let text = &self.bytes()[self.at..self.at + digits];
        // No leading zero, no fraction or exponent: serde decides those.
        if digits == 0 || (digits > 1 && text[0] == b'0') || matches!(self.bytes().get(self.at + digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = text.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
        self.at += digits;
        Some(value)
    }

    /// A number by JSON's grammar, not read.
    fn number(&mut self) -> Option<()> {
        let bytes = self.bytes();
        let digits = |at: usize| bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut at = self.at;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let whole = digits(at);
        if whole == 0 || (whole > 1 && bytes[at] == b'0') {
            return None;
        }
        at += whole;
        if bytes.get(at) == Some(&b'.') {
            let fraction = digits(at + 1);
            if fraction == 0 {
                return None;
            }
            at += 1 + fraction;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let exponent = digits(at);
            if exponent == 0 {
                return None;
            }
            at += exponent;
        }
        self.at = at;
        Some(())
    }

    /// Any value, checked and passed over.
    pub fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|scan, _| scan.skip(depth + 1)),
            b'[' => self.array(|scan| scan.skip(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }
}

/// Where a string's text ends: the first quote, backslash or control
/// character. Eight bytes at a time while none of them can be one (a word
/// test that may flag a clean word, never miss one), then byte by byte.
fn string_end(text: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut at = 0;
    while let Some(word) = text.get(at..at + 8) {
        let w = u64::from_ne_bytes(word.try_into().expect("eight bytes"));
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        if has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\'))) | below_space != 0 {
            break;
        }
        at += 8;
    }
    text[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|end| at + end)
}

/// Every one-byte change of `seed` that is still UTF-8: each byte deleted,
/// doubled, or replaced by a byte JSON cares about. The hand paths' tests
/// hold them to serde's answer over these.
#[cfg(test)]
pub(crate) fn one_byte_changes(seed: &str) -> Vec<String> {
    let replacements = b"{}[]\",:\\ 0123456789-+.eEtrufalsn\t\x01a";
    let bytes = seed.as_bytes();
    let mut changed = Vec::new();
    for at in 0..bytes.len() {
        changed.push([&bytes[..at], &bytes[at + 1..]].concat());
        changed.push([&bytes[..=at], &bytes[at..]].concat());
        changed.extend(replacements.iter().map(|&r| [&bytes[..at], &[r][..], &bytes[at + 1..]].concat()));
    }
    changed.into_iter().filter_map(|bytes| String::from_utf8(bytes).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word test finds every stop at every offset, after text of every length.
    #[test]
    fn a_string_ends_at_its_first_quote_backslash_or_control_character() {
        for len in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1f] {
                for filler in [b'a', 0x7f, 0x20, 0xc3, 0x21, 0x5d] {
                    let mut text = vec![filler; len];
                    text.push(stop);
                    text.extend_from_slice(b"tail\"");
                    assert_eq!(string_end(&text), Some(len), "{len} {stop} {filler}");
                }
            }
            assert_eq!(string_end(&vec![b'x'; len]), None);
        }
    }
}
