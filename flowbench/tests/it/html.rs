//! The HTML report as a browser shows it: headless Chromium (Debian's
//! `chromium`, or the one `cargo xtask test` found and passes as
//! `FLOWBENCH_BROWSER`) renders a page of two overlaid reports from disk,
//! and its screenshot is the asked size and not blank.

use flowbench::report::html::render;
use flowbench::report::sample::sample_report;
use std::process::Command;

#[test]
fn the_page_renders_in_headless_chromium_from_disk() {
    let browser = std::env::var("FLOWBENCH_BROWSER").unwrap_or_else(|_| "chromium".to_owned());
    let found = Command::new(&browser).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "{browser} is not installed: apt-get install chromium (cargo xtask test does)");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let mut b = sample_report();
    b.scenarios[0].qps.avg *= 1.2;
    std::fs::write(&page, render(&[("base.json".into(), sample_report()), ("head.json".into(), b)]).unwrap()).unwrap();
    let shot = dir.path().join("shot.png");
    let (width, height) = (1280u32, 1600u32);
    let output = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&output.stderr));
    let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap())).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (width, height));
    let channels = info.color_type.samples();
    let pixels = &pixels[..info.buffer_size()];
    let inked = pixels.chunks(channels).filter(|p| p[..3].iter().any(|&c| c < 200)).count();
    let share = inked as f64 / (width * height) as f64;
    // Tables, axes, lines and text: a blank or failed page inks next to nothing.
    assert!(share > 0.01, "only {:.3}% of the screenshot is drawn", share * 100.0);
}
