//! Dify's variable references: `{{#node_id.var#}}` in prompt text and
//! `value_selector: [node_id, var]` lists, parsed once at load into
//! `Template`s and `Selector`s so that no request ever parses them again.

use std::fmt;

/// Where a value comes from: a node's output variable or a `sys.*` variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    /// The producing node's id, or `sys`.
    pub node_id: String,
    pub var: String,
}

impl Selector {
    pub fn new(node_id: impl Into<String>, var: impl Into<String>) -> Self {
        Self { node_id: node_id.into(), var: var.into() }
    }

    pub fn is_sys(&self) -> bool {
        self.node_id == "sys"
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{#{}.{}#}}}}", self.node_id, self.var)
    }
}

/// Prompt text split into literal text and variable references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Var(Selector),
}

impl Template {
    /// Splits `text` at every well-formed `{{#a.b#}}`; anything else stays
    /// literal text, as in Dify (which matches references with a regex).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find("{{#") {
            let after = &rest[open + 3..];
            let Some(close) = after.find("#}}") else {
                break;
            };
            let inner = &after[..close];
            let parts: Vec<&str> = inner.split('.').collect();
            let well_formed =
                parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            if !well_formed {
                literal.push_str(&rest[..open + 3]);
                rest = after;
                continue;
            }
            if parts.len() > 2 {
                return Err(format!("reference {{{{#{inner}#}}}} reaches into a nested field, which is not supported"));
            }
            literal.push_str(&rest[..open]);
            if !literal.is_empty() {
                segments.push(TemplatePart::Text(std::mem::take(&mut literal)));
            }
            segments.push(TemplatePart::Var(Selector::new(parts[0], parts[1])));
            rest = &after[close + 3..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(TemplatePart::Text(literal));
        }
        Ok(Self { segments })
    }

    pub fn selectors(&self) -> impl Iterator<Item = &Selector> {
        self.segments.iter().filter_map(|s| match s {
            TemplatePart::Var(sel) => Some(sel),
            TemplatePart::Text(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_references() {
        let t = Template::parse("Q: {{#1757611990947.question#}} by {{#sys.user_id#}}!").unwrap();
        assert_eq!(
            t.segments,
            [
                TemplatePart::Text("Q: ".into()),
                TemplatePart::Var(Selector::new("1757611990947", "question")),
                TemplatePart::Text(" by ".into()),
                TemplatePart::Var(Selector::new("sys", "user_id")),
                TemplatePart::Text("!".into()),
            ]
        );
    }

    #[test]
    fn malformed_references_stay_literal() {
        let t = Template::parse("{{#context#}} {{#a b.c#}} {{#x.y").unwrap();
        assert_eq!(t.segments, [TemplatePart::Text("{{#context#}} {{#a b.c#}} {{#x.y".into())]);
    }

    #[test]
    fn nested_reference_is_an_error() {
        assert!(Template::parse("{{#a.b.c#}}").unwrap_err().contains("nested"));
    }
}
