//! What flowbench and xtask show people besides the terminal tables: HTML
//! pages (`html`: the page shell, tables and plots, drawn with plotters)
//! and progress through counted steps (`progress`, with indicatif). Light
//! on purpose: xtask links it without the driver, the runtime or the server.

pub mod html;
pub mod progress;
