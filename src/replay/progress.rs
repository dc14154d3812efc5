//! The replay's progress on a terminal: one bar, redrawn in place, with the
//! outcome counts so far (hidden when stderr is not a terminal).

/// The replay's progress bar: one line, redrawn in place; the counts are
/// cut to the terminal's width.
pub fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style =
        indicatif::ProgressStyle::with_template("[{bar:20}] {pos}/{len} eta {eta}  {wide_msg}")
            .map(|style| style.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// Shows a replay's progress on its bar.
pub fn show_progress(bar: &indicatif::ProgressBar, p: &super::Progress) {
    bar.set_length(p.total);
    bar.set_position(p.done);
    bar.set_message(format!(
        "{} matched, {} mismatched, {} candidate errors, {} skipped",
        p.matched, p.mismatched, p.candidate_errors, p.skipped
    ));
}
