//! The bare handler answers what the driver's preflight and a blocking run need.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::test]
async fn the_bare_handler_answers_runs_and_parameters() {
    let (addr, task) = mock::bare::serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let run = http::Request::post(format!("http://{addr}/v1/workflows/run")).body(Full::new(Bytes::from_static(b"{}"))).unwrap();
    let response = client.request(run).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), mock::bare::RUN_ANSWER.as_bytes());
    let parameters = http::Request::get(format!("http://{addr}/v1/parameters")).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(client.request(parameters).await.unwrap().status(), 200);
    task.abort();
}

/// Each streaming run gets the template's frames with ids of its own, the
/// same run id and task id in every event of the run.
#[test]
fn each_emitted_stream_has_its_own_ids() {
    let (a, b) = (mock::bare::llm_stream_frames(), mock::bare::llm_stream_frames());
    let text = |frames: &[Bytes]| String::from_utf8(frames.concat()).unwrap();
    let (a, b) = (text(&a), text(&b));
    let run_id = |s: &str| s.split("\"workflow_run_id\":\"").nth(1).unwrap()[..36].to_owned();
    let task_id = |s: &str| s.split("\"task_id\":\"").nth(1).unwrap()[..36].to_owned();
    let (run, task) = (run_id(&a), task_id(&a));
    assert_ne!(run, run_id(&b));
    assert_ne!(run, task);
    assert!(run.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() }), "{run}");
    assert_eq!(a.replace(&run, "{run}").replace(&task, "{task}"), mock::bare::LLM_STREAM);
}
