//! Decoding and checking a run request, in Dify's order: the body must be a
//! JSON object (`bad_request`), `user` must be given (`invalid_param`), the
//! payload must fit `WorkflowRunPayload` (pydantic's messages), and the
//! inputs must fit the start node's variables (required, type, `max_length`,
//! select options). All of it happens before any stream starts, so a
//! streaming request gets the same 400 as a blocking one.

use super::error::{ApiError, MSG_NO_USER};
use crate::json_scan::Scan;
use crate::pyjson::{python_type_name, truncated_repr};
use crate::workflow::dsl::{NodeKind, StartVariable, VarType, Workflow};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Blocking,
    Streaming,
}

/// A decoded, checked run request.
#[derive(Debug)]
pub struct RunPayload {
    /// Every start variable in declaration order; missing optional ones are null.
    pub inputs: Map<String, Value>,
    pub response_mode: ResponseMode,
    pub user: String,
}

/// Fields not named here (`files`, padding, anything) are skipped unread.
#[derive(Deserialize, Debug, PartialEq)]
struct RawRunBody {
    #[serde(default, deserialize_with = "present")]
    inputs: Option<Value>,
    #[serde(default)]
    response_mode: Option<RawMode>,
    #[serde(default)]
    user: Option<Value>,
}

/// `response_mode` as sent: one of the two modes, or any other JSON value,
/// kept for the error message.
#[derive(Debug, PartialEq)]
enum RawMode {
    Mode(ResponseMode),
    Other(Value),
}

impl<'de> Deserialize<'de> for RawMode {
    /// The two modes as sent by every client are matched in the request's
    /// own text, with nothing allocated; anything else (escapes included)
    /// is decoded as a value first.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&serde_json::value::RawValue>::deserialize(d)?;
        Ok(match raw.get() {
            "\"blocking\"" => RawMode::Mode(ResponseMode::Blocking),
            "\"streaming\"" => RawMode::Mode(ResponseMode::Streaming),
            text => {
                let value: Value = serde_json::from_str(text).map_err(serde::de::Error::custom)?;
                match value.as_str() {
                    Some("blocking") => RawMode::Mode(ResponseMode::Blocking),
                    Some("streaming") => RawMode::Mode(ResponseMode::Streaming),
                    _ => RawMode::Other(value),
                }
            }
        })
    }
}

/// `Some(Value::Null)` for an explicit `null`, `None` only when absent.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Decodes a `POST /v1/workflows/run` body against `workflow`.
pub fn decode_run(body: &[u8], workflow: &Workflow) -> Result<RunPayload, ApiError> {
    let text = json_object_text(body)?;
    let raw = match run_body_by_hand(text) {
        Some(raw) => raw,
        None => serde_json::from_str::<RawRunBody>(text).map_err(|_| ApiError::bad_request())?,
    };
    let user = user_of(raw.user)?;
    let mut errors = Vec::new();
    let inputs = match raw.inputs {
        Some(Value::Object(map)) => Some(map),
        None => {
            errors.push(PydanticError::missing("inputs", body));
            None
        }
        Some(other) => {
            errors.push(PydanticError::new("inputs", "Input should be a valid dictionary", "dict_type", &other));
            None
        }
    };
    let response_mode = match &raw.response_mode {
        None | Some(RawMode::Other(Value::Null)) => Some(ResponseMode::Blocking),
        Some(RawMode::Mode(mode)) => Some(*mode),
        Some(RawMode::Other(other)) => {
            errors.push(PydanticError::new("response_mode", "Input should be 'blocking' or 'streaming'", "literal_error", other));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_param(pydantic_message("WorkflowRunPayload", &errors)));
    }
    let inputs = check_inputs(inputs.expect("no errors"), workflow)?;
    Ok(RunPayload { inputs, response_mode: response_mode.expect("no errors"), user })
}

/// Decodes a `POST /v1/workflows/tasks/{id}/stop` body: just its `user`.
pub fn decode_stop(body: &[u8]) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct RawStopBody {
        #[serde(default)]
        user: Option<Value>,
    }
    let raw = decode_object::<RawStopBody>(body)?;
    user_of(raw.user)
}

fn decode_object<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_str(json_object_text(body)?).map_err(|_| ApiError::bad_request())
}

/// The body as text, if it can be a JSON object at all.
fn json_object_text(body: &[u8]) -> Result<&str, ApiError> {
    // serde accepts a JSON array for a struct; Dify's payload must be an object.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::bad_request());
    }
    // Flask decodes the whole body first: invalid UTF-8 anywhere, even in a
    // field nobody reads, is not JSON. serde skips unread strings unchecked.
    // Parsing the checked text, serde does not check its strings again.
    std::str::from_utf8(body).map_err(|_| ApiError::bad_request())
}

/// The usual run body read by hand (`json_scan`): what serde would read
/// from it, or `None` where serde must decide (escapes, a repeated key,
/// an input that is not a string, a non-negative integer, a boolean or
/// null, an error of any kind). Every run request is decoded, and serde's
/// derive spent most of its time on the visitor machinery for a handful
/// of keys.
fn run_body_by_hand(text: &str) -> Option<RawRunBody> {
    let mut scan = Scan::new(text);
    let mut body = RawRunBody { inputs: None, response_mode: None, user: None };
    let mut seen = [false; 3];
    scan.object(|scan, key| {
        let slot = match key {
            "inputs" => 0,
            "response_mode" => 1,
            "user" => 2,
            _ => return scan.skip(1),
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        match slot {
            // `present`: an explicit null is `Some(Null)`.
            0 => body.inputs = Some(scan.nullable(inputs_by_hand)?.map_or(Value::Null, Value::Object)),
            // An `Option` reads null as `None`.
            1 => {
                body.response_mode = match scan.nullable(Scan::string)? {
                    Some("blocking") => Some(RawMode::Mode(ResponseMode::Blocking)),
                    Some("streaming") => Some(RawMode::Mode(ResponseMode::Streaming)),
                    Some(_) => return None,
                    None => None,
                }
            }
            _ => body.user = scan.nullable(Scan::string)?.map(|user| Value::String(user.to_owned())),
        }
        Some(())
    })?;
    // serde_json takes trailing whitespace and nothing else.
    scan.peek().is_none().then_some(body)
}

fn inputs_by_hand(scan: &mut Scan<'_>) -> Option<Map<String, Value>> {
    let mut inputs = Map::new();
    scan.object(|scan, key| {
        let value = match scan.peek()? {
            b'"' => Value::String(scan.string()?.to_owned()),
            b't' => scan.literal(b"true").map(|()| Value::Bool(true))?,
            b'f' => scan.literal(b"false").map(|()| Value::Bool(false))?,
            b'n' => scan.literal(b"null").map(|()| Value::Null)?,
            b'0'..=b'9' => Value::from(scan.integer()?),
            _ => return None,
        };
        // serde keeps a repeated key's first place and last value: rare, its call.
        inputs.insert(key.to_owned(), value).is_none().then_some(())
    })?;
    Some(inputs)
}

/// Dify takes any truthy `user`; a number is used as its text, and zero is
/// falsy in Python (`if not user`).
fn user_of(user: Option<Value>) -> Result<String, ApiError> {
    match user {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Number(n)) if n.as_f64() != Some(0.0) => Ok(n.to_string()),
        _ => Err(ApiError::invalid_param(MSG_NO_USER)),
    }
}

/// Checks `inputs` against the start node's variables, in declaration order;
/// undeclared inputs are dropped, as Dify does.
pub fn check_inputs(mut inputs: Map<String, Value>, workflow: &Workflow) -> Result<Map<String, Value>, ApiError> {
    let variables: &[StartVariable] = workflow
        .nodes
        .first()
        .and_then(|n| match &n.kind {
            NodeKind::Start { variables } => Some(variables.as_slice()),
            _ => None,
        })
        .unwrap_or_default();
    // Inputs that are the variables, in their order (as clients send
    // them): checked in place, with no new map.
    if inputs.len() == variables.len() && inputs.keys().zip(variables).all(|(k, v)| *k == v.variable) {
        for (value, var) in inputs.values_mut().zip(variables) {
            *value = check_input(var, std::mem::take(value)).map_err(ApiError::invalid_param)?;
        }
        return Ok(inputs);
    }
    let mut checked = Map::with_capacity(variables.len());
    for var in variables {
        let value = inputs.remove(&var.variable).unwrap_or(Value::Null);
        let value = check_input(var, value).map_err(ApiError::invalid_param)?;
        checked.insert(var.variable.clone(), value);
    }
    Ok(checked)
}

fn check_input(var: &StartVariable, value: Value) -> Result<Value, String> {
    let name = &var.variable;
    if value.is_null() {
        if var.required {
            return Err(format!("{name} is required in input form"));
        }
        return Ok(Value::Null);
    }
    match var.var_type {
        VarType::TextInput | VarType::Paragraph | VarType::Select => {
            let Value::String(text) = value else {
                return Err(format!("(type '{}') {name} in input form must be a string", var.var_type.as_str()));
            };
            if var.var_type == VarType::Select && !var.options.contains(&text) {
                let options: Vec<Value> = var.options.iter().map(|o| Value::String(o.clone())).collect();
                return Err(format!(
                    "{name} in input form must be one of the following: {}",
                    crate::pyjson::python_repr(&Value::Array(options))
                ));
            }
            if let Some(max) = var.max_length.filter(|_| var.var_type != VarType::Select)
                && text.chars().count() as u64 > max
            {
                return Err(format!("{name} in input form must be less than {max} characters"));
            }
            Ok(Value::String(if text.contains('\0') { text.replace('\0', "") } else { text }))
        }
        VarType::Number => match value {
            Value::Number(_) => Ok(value),
            Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
            Value::String(s) => parse_number(s.trim()).ok_or_else(|| format!("{name} in input form must be a valid number")),
            _ => Err(format!("{name} in input form must be a valid number")),
        },
        VarType::Checkbox => match value {
            Value::Bool(_) => Ok(value),
            _ => Err(format!("{name} in input form must be a boolean")),
        },
    }
}

fn parse_number(s: &str) -> Option<Value> {
    if s.contains(['.', 'e', 'E']) {
        s.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
    } else {
        s.parse::<i64>().ok().map(Value::from)
    }
}

struct PydanticError {
    field: &'static str,
    message: &'static str,
    error_type: &'static str,
    input_value: String,
    input_type: &'static str,
}

impl PydanticError {
    fn new(field: &'static str, message: &'static str, error_type: &'static str, input: &Value) -> Self {
        Self { field, message, error_type, input_value: truncated_repr(input), input_type: python_type_name(input) }
    }

    /// pydantic shows the whole payload as the input of a missing field.
    fn missing(field: &'static str, body: &[u8]) -> Self {
        let whole: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        Self::new(field, "Field required", "missing", &whole)
    }
}

fn pydantic_message(model: &str, errors: &[PydanticError]) -> String {
    let n = errors.len();
    let mut text = format!("{n} validation error{} for {model}", if n == 1 { "" } else { "s" });
    for e in errors {
        text.push_str(&format!(
            "\n{}\n  {} [type={}, input_value={}, input_type={}]\n    For further information visit https://errors.pydantic.dev/2.12/v/{}",
            e.field, e.message, e.error_type, e.input_value, e.input_type, e.error_type
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The usual bodies, compact or spaced as Python writes them, are read
    /// by hand, and read as serde reads them.
    #[test]
    fn the_usual_run_bodies_are_read_by_hand() {
        let bodies = [
            r#"{"inputs":{"question":"What is ML?"},"response_mode":"blocking","user":"user_3"}"#,
            r#"{"inputs": {"question": "é ✓", "n": 12, "ok": true, "none": null}, "response_mode": "streaming", "user": "u", "files": [{"type": "image", "x": -1.5e3}]}"#,
            r#" {"inputs":{},"response_mode":null,"user":null} "#,
            r#"{"inputs":null}"#,
            r#"{}"#,
        ];
        for text in bodies {
            let hand = run_body_by_hand(text);
            assert!(hand.is_some(), "{text} should be read by hand");
            assert_eq!(hand, serde_json::from_str(text).ok(), "{text}");
        }
        for text in [
            r#"{"user":"a\"b"}"#,
            r#"{"user":1}"#,
            r#"{"inputs":{"n":-1}}"#,
            r#"{"inputs":{"n":1.5}}"#,
            r#"{"inputs":{"a":1,"a":2}}"#,
            r#"{"response_mode":"other"}"#,
            r#"{"user":"a","user":"b"}"#,
            r#"{"inputs":[]}"#,
        ] {
            assert!(run_body_by_hand(text).is_none(), "{text} should go to serde");
        }
    }

    /// Over every one-byte change of sample bodies, whatever the hand path
    /// reads, serde reads the same; it never accepts what serde refuses.
    #[test]
    fn the_hand_read_body_agrees_with_serde_on_mutated_bodies() {
        let seeds = [
            r#"{"inputs":{"question":"ab c","n":17,"t":true,"f":false,"z":null},"response_mode":"streaming","user":"user_1","files":[1.5e-2,{"k":[]}]}"#,
            r#"{ "user" : "u" , "response_mode" : "blocking" , "inputs" : { } }"#,
        ];
        let (mut read_by_hand, mut total) = (0, 0);
        for text in seeds.iter().flat_map(|seed| crate::json_scan::one_byte_changes(seed)) {
            total += 1;
            if let Some(hand) = run_body_by_hand(&text) {
                read_by_hand += 1;
                assert_eq!(Some(hand), serde_json::from_str::<RawRunBody>(&text).ok(), "{text}");
            }
        }
        assert!(read_by_hand > total / 10, "{read_by_hand} of {total} read by hand");
    }

    fn workflow() -> Workflow {
        crate::workflow::dsl::parse(Path::new("test.yml"), include_str!("../../../fixtures/workflows/start_end.yml")).unwrap()
    }

    #[track_caller]
    fn check(body: &str, expect: Result<&str, &str>) {
        let got = decode_run(body.as_bytes(), &workflow());
        match (got, expect) {
            (Ok(p), Ok(inputs)) => assert_eq!(Value::Object(p.inputs).to_string(), inputs),
            (Err(e), Err(message)) => assert_eq!(e.message, message),
            (got, expect) => panic!("{body}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn decodes_in_difys_order() {
        check(r#"{"inputs":{"question":"hi","zzz":1},"user":"u"}"#, Ok(r#"{"question":"hi"}"#));
        check(r#"{"inputs":{"question":""},"user":"u"}"#, Ok(r#"{"question":""}"#));
        check("[]", Err(crate::http::error::MSG_BAD_REQUEST));
        check(r#"{"inputs":{}}"#, Err(MSG_NO_USER));
        check(r#"{"inputs":{},"user":0}"#, Err(MSG_NO_USER));
        check(r#"{"inputs":{},"user":-0.0}"#, Err(MSG_NO_USER));
        check(r#"{"inputs":{"question":"hi"},"user":7}"#, Ok(r#"{"question":"hi"}"#));
        check("{\"inputs\":{\"question\":\"hi\"},\"user\":\"u\",\"x\":\"\u{7f}\"}", Ok(r#"{"question":"hi"}"#));
        check(r#"{"inputs":{},"user":"u"}"#, Err("question is required in input form"));
        check(r#"{"inputs":{"question":null},"user":"u"}"#, Err("question is required in input form"));
        check(r#"{"inputs":{"question":123},"user":"u"}"#, Err("(type 'text-input') question in input form must be a string"));
        check(
            r#"{"response_mode":"blocking","user":"bench"}"#,
            Err(
                "1 validation error for WorkflowRunPayload\ninputs\n  Field required [type=missing, input_value={'response_mode': 'blocking', 'user': 'bench'}, input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.12/v/missing",
            ),
        );
        check(
            r#"{"inputs":{},"response_mode":"bogus","user":"bench"}"#,
            Err(
                "1 validation error for WorkflowRunPayload\nresponse_mode\n  Input should be 'blocking' or 'streaming' [type=literal_error, input_value='bogus', input_type=str]\n    For further information visit https://errors.pydantic.dev/2.12/v/literal_error",
            ),
        );
        // A mode spelled with escapes is the mode; a mode of another type is not.
        assert_eq!(
            decode_run(br#"{"inputs":{"question":"q"},"response_mode":"\u0073treaming","user":"u"}"#, &workflow()).unwrap().response_mode,
            ResponseMode::Streaming
        );
        assert_eq!(
            decode_run(br#"{"inputs":{"question":"q"},"response_mode" : "blocking" ,"user":"u"}"#, &workflow()).unwrap().response_mode,
            ResponseMode::Blocking
        );
        check(
            r#"{"inputs":{},"response_mode":["streaming"],"user":"bench"}"#,
            Err(
                "1 validation error for WorkflowRunPayload\nresponse_mode\n  Input should be 'blocking' or 'streaming' [type=literal_error, input_value=['streaming'], input_type=list]\n    For further information visit https://errors.pydantic.dev/2.12/v/literal_error",
            ),
        );
        let long = "x".repeat(257);
        check(
            &format!(r#"{{"inputs":{{"question":"{long}"}},"user":"u"}}"#),
            Err("question in input form must be less than 256 characters"),
        );
    }

    /// In declaration order, the inputs are checked in place; in any other
    /// order, or with extra or missing keys, rebuilt: the same answer.
    #[test]
    fn inputs_in_order_or_not_give_the_same_checked_map() {
        let all = crate::workflow::dsl::parse(Path::new("all.yml"), include_str!("../../../fixtures/workflows/all_inputs.yml")).unwrap();
        let decode = |inputs: &str| {
            decode_run(format!(r#"{{"inputs":{inputs},"user":"u"}}"#).as_bytes(), &all)
                .map(|p| Value::Object(p.inputs).to_string())
                .map_err(|e| e.message.to_string())
        };
        let in_order =
            r#"{"text":"t\u0000x","para":null,"choice":"red","count":" 3 ","flag":true,"note":"n","size":"S","ratio":"","agree":false}"#;
        let reordered =
            r#"{"agree":false,"ratio":"","size":"S","note":"n","flag":true,"count":" 3 ","choice":"red","para":null,"text":"t\u0000x"}"#;
        let expected = r#"{"text":"tx","para":null,"choice":"red","count":3,"flag":true,"note":"n","size":"S","ratio":null,"agree":false}"#;
        assert_eq!(decode(in_order).as_deref(), Ok(expected));
        assert_eq!(decode(reordered).as_deref(), Ok(expected));
        let with_extra = in_order.replace(r#""agree":false"#, r#""agree":false,"zzz":1"#);
        assert_eq!(decode(&with_extra).as_deref(), Ok(expected));
        // The first bad variable in declaration order is the one named, either way.
        let bad = in_order.replace(r#""red""#, r#""pink""#).replace(r#"" 3 ""#, r#""x""#);
        let bad_reordered = reordered.replace(r#""red""#, r#""pink""#).replace(r#"" 3 ""#, r#""x""#);
        let message = "choice in input form must be one of the following: ['red', 'green', 'blue']";
        assert_eq!(decode(&bad), Err(message.to_owned()));
        assert_eq!(decode(&bad_reordered), Err(message.to_owned()));
    }
}
