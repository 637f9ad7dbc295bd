//! `--prometheus URL --target-cpu PROMQL [--target-memory PROMQL]`: the
//! target's CPU and memory as a Prometheus server measured them, over
//! exactly the measured interval, for targets the driver cannot read from
//! `/proc` (another machine, a cluster).
//!
//! A query holding `$__range` (as Grafana writes it) is one instant query
//! at the interval's end with the interval's length put in, so
//! `rate(x[$__range])` covers the interval and nothing else; any other
//! query is a range query, and the figure is the mean (and the max) of
//! its samples. Either way the query must give one series: a figure
//! summed over pods the user did not mean would look right and be wrong.

use crate::load::scrape::fetch_text_as;
use schema::observe::PromQuery;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prometheus answers in milliseconds when healthy; a slow query over a
/// long run still should not hold up the report for long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `PromQuery::method` of a query holding `$__range`.
pub const INSTANT_METHOD: &str = "instant at the interval's end over [$__range]";

/// Runs `query` against the Prometheus at `base_url` over `start..end`
/// (see the module's doc for how); never fails: what went wrong is the
/// result's `error`.
pub async fn query_over(base_url: &str, query: &str, start: SystemTime, end: SystemTime, step: Duration) -> PromQuery {
    let base = base_url.trim_end_matches('/');
    let end_s = format!("{:.3}", unix_s(end));
    if query.contains("$__range") {
        // Whole milliseconds: PromQL durations take no fraction.
        let range_ms = end.duration_since(start).unwrap_or_default().as_millis().max(1);
        let sent = query.replace("$__range", &format!("{range_ms}ms"));
        let url = format!("{base}/api/v1/query");
        let params = url::form_urlencoded::Serializer::new(String::new()).append_pair("query", &sent).append_pair("time", &end_s).finish();
        let answer = get_data(&url, &params).await.and_then(|data| instant_value(&data));
        let (value, samples, error) = match answer {
            Ok(value) => (Some(value), 1, None),
            Err(e) => (None, 0, Some(e)),
        };
        PromQuery { query: sent, method: INSTANT_METHOD.to_owned(), value, max: None, samples, error }
    } else {
        let url = format!("{base}/api/v1/query_range");
        let params = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .append_pair("start", &format!("{:.3}", unix_s(start)))
            .append_pair("end", &end_s)
            .append_pair("step", &step.as_secs_f64().to_string())
            .finish();
        let method = format!("range query, mean and max of samples every {}", humantime::format_duration(step));
        let mut out = PromQuery { query: query.to_owned(), method, value: None, max: None, samples: 0, error: None };
        match get_data(&url, &params).await.and_then(|data| range_values(&data)) {
            Ok(values) => {
                out.value = Some(values.iter().sum::<f64>() / values.len() as f64);
                out.max = values.iter().copied().reduce(f64::max);
                out.samples = values.len() as u64;
            }
            Err(e) => out.error = Some(e),
        }
        out
    }
}

fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// GETs `url?params` and gives Prometheus' `data`, or the error naming
/// the URL (without the query: it is in the report beside), the HTTP
/// status and Prometheus' own words.
async fn get_data(url: &str, params: &str) -> Result<Value, String> {
    let (status, body) = fetch_text_as(&format!("{url}?{params}"), url, TIMEOUT).await?;
    let code = status.as_u16();
    let Ok(mut json) = serde_json::from_str::<Value>(&body) else {
        return Err(crate::load::scrape::status_error(url, status, &body));
    };
    if status.is_success() && json.get("status").and_then(Value::as_str) == Some("success") {
        return json.get_mut("data").map(Value::take).ok_or_else(|| format!("GET {url}: HTTP {code}: the answer has no data"));
    }
    let text = |field: &str| json.get(field).and_then(Value::as_str).map(str::to_owned);
    Err(match (text("errorType"), text("error")) {
        (Some(kind), Some(error)) => format!("GET {url}: HTTP {code} {kind}: {error}"),
        (None, Some(error)) => format!("GET {url}: HTTP {code}: {error}"),
        _ => crate::load::scrape::status_error(url, status, &body),
    })
}

fn result_type(data: &Value) -> &str {
    data.get("resultType").and_then(Value::as_str).unwrap_or("nothing")
}

/// The one series of a vector or matrix result.
fn only_series(data: &Value) -> Result<&Value, String> {
    let series = data.get("result").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    match series {
        [one] => Ok(one),
        [] => Err("the query returned no series".to_owned()),
        many => Err(format!("the query returned {} series; aggregate them (sum(...))", many.len())),
    }
}

/// A `[timestamp, "value"]` pair's value, finite.
fn sample_value(pair: &Value) -> Result<f64, String> {
    let raw = pair.get(1).and_then(Value::as_str).ok_or_else(|| format!("the query returned {pair}, not a [time, value] pair"))?;
    match raw.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(format!("the query returned {raw}")),
        Err(_) => Err(format!("the query returned {raw:?}, not a number")),
    }
}

fn instant_value(data: &Value) -> Result<f64, String> {
    match result_type(data) {
        "vector" => sample_value(only_series(data)?.get("value").unwrap_or(&Value::Null)),
        "scalar" => sample_value(data.get("result").unwrap_or(&Value::Null)),
        other => Err(format!("the query returned a {other}, not a vector or a scalar")),
    }
}

fn range_values(data: &Value) -> Result<Vec<f64>, String> {
    if result_type(data) != "matrix" {
        return Err(format!("the range query returned a {}, not a matrix", result_type(data)));
    }
    let pairs = only_series(data)?.get("values").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if pairs.is_empty() {
        return Err("the query returned no samples".to_owned());
    }
    pairs.iter().map(sample_value).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the fake Prometheus was asked: path and decoded parameters.
    type Asked = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

    /// A Prometheus on loopback answering canned JSON by what the query names.
    async fn prometheus() -> (String, Asked) {
        let asked: Asked = Arc::default();
        let log = asked.clone();
        let answer = move |uri: http::Uri| {
            let params: Vec<(String, String)> =
                url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
            log.lock().unwrap().push((uri.path().to_owned(), params.clone()));
            let query = params.iter().find(|(k, _)| k == "query").map(|(_, v)| v.clone()).unwrap_or_default();
            let vector = |result: &str| format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}"#);
            let one = r#"{"metric":{},"value":[1700000000.5,"1.5"]}"#;
            let (status, body) = if query.contains("broken") {
                (400, r#"{"status":"error","errorType":"bad_data","error":"1:6: parse error: unexpected \"}\""}"#.to_owned())
            } else if query.contains("per_pod") {
                (200, vector(&[one, one].join(",")))
            } else if query.contains("nothing") {
                (200, vector(""))
            } else if query.contains("nan") {
                (200, vector(r#"{"metric":{},"value":[1700000000.5,"NaN"]}"#))
            } else if query.contains("proxy") {
                (502, "Bad Gateway".to_owned())
            } else if uri.path().ends_with("query_range") {
                let values = r#"[[1700000000,"1"],[1700000005,"2"],[1700000010,"6"]]"#;
                (
                    200,
                    format!(
                        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"pod":"a"}},"values":{values}}}]}}}}"#
                    ),
                )
            } else if query.starts_with("scalar") {
                (200, r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"4"]}}"#.to_owned())
            } else {
                (200, vector(one))
            };
            async move { (http::StatusCode::from_u16(status).unwrap(), body) }
        };
        let app = axum::Router::new()
            .route("/api/v1/query", axum::routing::get(answer.clone()))
            .route("/api/v1/query_range", axum::routing::get(answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, asked)
    }

    fn interval() -> (SystemTime, SystemTime) {
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        (start, start + Duration::from_millis(37_250))
    }

    fn param<'a>(params: &'a [(String, String)], key: &str) -> &'a str {
        params.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn range_is_the_interval_and_one_instant_query_at_its_end() {
        let (base, asked) = prometheus().await;
        let (start, end) = interval();
        let query = "sum(rate(container_cpu_usage_seconds_total{pod=~\"server-.*\"}[$__range])) + 0 * $__range";
        let got = query_over(&format!("{base}/"), query, start, end, Duration::from_secs(5)).await;
        let sent = "sum(rate(container_cpu_usage_seconds_total{pod=~\"server-.*\"}[37250ms])) + 0 * 37250ms";
        let expected =
            PromQuery { query: sent.into(), method: INSTANT_METHOD.into(), value: Some(1.5), max: None, samples: 1, error: None };
        assert_eq!(got, expected);
        let asked = asked.lock().unwrap();
        let (path, params) = &asked[0];
        assert_eq!(path, "/api/v1/query");
        assert_eq!(param(params, "query"), sent);
        assert_eq!(param(params, "time"), "1700000037.250");
        assert_eq!(asked.len(), 1);
    }

    #[tokio::test]
    async fn a_query_without_range_is_a_range_query_averaged() {
        let (base, asked) = prometheus().await;
        let (start, end) = interval();
        let got = query_over(&base, "container_memory_working_set_bytes{pod=\"server-0\"}", start, end, Duration::from_secs(5)).await;
        assert_eq!((got.value, got.max, got.samples, &got.error), (Some(3.0), Some(6.0), 3, &None));
        assert_eq!(got.method, "range query, mean and max of samples every 5s");
        let (path, params) = asked.lock().unwrap()[0].clone();
        assert_eq!(path, "/api/v1/query_range");
        assert_eq!(
            ["query", "start", "end", "step"].map(|k| param(&params, k)),
            ["container_memory_working_set_bytes{pod=\"server-0\"}", "1700000000.000", "1700000037.250", "5"]
        );
        let scalar = query_over(&base, "scalar(x[$__range])", start, end, Duration::from_secs(5)).await;
        assert_eq!(scalar.value, Some(4.0), "{scalar:?}");
    }

    #[tokio::test]
    async fn errors_name_the_url_the_status_and_prometheus_own_words() {
        let (base, _) = prometheus().await;
        let (start, end) = interval();
        let step = Duration::from_secs(5);
        for (query, error) in [
            ("broken}[$__range]", format!("GET {base}/api/v1/query: HTTP 400 bad_data: 1:6: parse error: unexpected \"}}\"")),
            ("broken}", format!("GET {base}/api/v1/query_range: HTTP 400 bad_data: 1:6: parse error: unexpected \"}}\"")),
            ("per_pod[$__range]", "the query returned 2 series; aggregate them (sum(...))".to_owned()),
            ("nothing[$__range]", "the query returned no series".to_owned()),
            ("nan[$__range]", "the query returned NaN".to_owned()),
            ("proxy[$__range]", format!("GET {base}/api/v1/query: HTTP 502: Bad Gateway")),
        ] {
            let got = query_over(&base, query, start, end, step).await;
            assert_eq!((got.error.as_deref(), got.value, got.samples), (Some(error.as_str()), None, 0), "{query}");
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let got = query_over(&closed, "up", start, end, step).await;
        let error = got.error.unwrap();
        assert!(error.starts_with(&format!("GET {closed}/api/v1/query_range: ")) && !error.contains("query="), "{error}");
    }
}
