//! A small Prometheus registry: counters, gauges, histograms with fixed buckets and summaries over a bounded
//! window, kept in families of labelled series, and the text exposition format (version 0.0.4).
//!
//! Memory is bounded twice: a histogram is its fixed buckets, a summary keeps its last [`WINDOW`] observations;
//! a family holds at most [`MAX_SERIES`] label sets, after which new label sets are counted under one series whose
//! labels are all `other` (so a procedure that invents node ids cannot grow the registry without end). Label values
//! are escaped and cut to [`MAX_LABEL_BYTES`].

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Label sets a family holds before new ones fall into the `other` series.
pub const MAX_SERIES: usize = 1000;
/// Observations a summary's quantiles are computed over (the most recent ones).
pub const WINDOW: usize = 1024;
/// Longest label value kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_LABEL_BYTES: usize = 128;

/// A float that only grows (or is set, for gauges), updated without a lock.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn add(&self, v: f64) {
        let mut old = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match self.0.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => old = seen,
            }
        }
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicF64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }

    /// Adds `v` (negative and non-finite values are ignored: a counter never goes down).
    pub fn add(&self, v: f64) {
        if v.is_finite() && v > 0.0 {
            self.0.add(v);
        }
    }

    /// The value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicF64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }

    /// Adds `v` (may be negative).
    pub fn add(&self, v: f64) {
        self.0.add(v);
    }

    /// The value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// Observations counted into fixed buckets (upper bounds, ascending; `+Inf` is implied).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last one for values above every bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum: AtomicF64::default() }
    }

    /// Records one observation (non-finite values are ignored).
    pub fn observe(&self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// LangOrch's summaries: `_sum` and `_count` of every observation and quantiles over the last [`WINDOW`].
#[derive(Debug, Default)]
pub struct Summary {
    window: Mutex<VecDeque<f64>>,
    sum: AtomicF64,
    count: AtomicU64,
}

/// The quantiles a summary reports (LangOrch's: the median, the 95th percentile and the maximum).
pub const QUANTILES: [f64; 3] = [0.5, 0.95, 1.0];

impl Summary {
    /// Records one observation (non-finite values are ignored).
    pub fn observe(&self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if let Ok(mut w) = self.window.lock() {
            if w.len() == WINDOW {
                w.pop_front();
            }
            w.push_back(v);
        }
        self.sum.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The nearest-rank quantiles of the window, or none when it is empty.
    fn quantiles(&self) -> Option<[f64; 3]> {
        let mut values: Vec<f64> = self.window.lock().ok()?.iter().copied().collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        Some(QUANTILES.map(|q| {
            // Nearest rank: the smallest value with at least q·n values at or below it.
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            values[rank - 1]
        }))
    }
}

/// What a family's series are.
pub trait Metric: Send + Sync + std::fmt::Debug {
    /// The `# TYPE` word.
    const KIND: &'static str;
    /// Writes this series' samples (`name` and the rendered `labels`, without braces, possibly empty).
    fn render(&self, out: &mut String, name: &str, labels: &str);
}

impl Metric for Counter {
    const KIND: &'static str = "counter";
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        sample(out, name, "", labels, None, self.get());
    }
}

impl Metric for Gauge {
    const KIND: &'static str = "gauge";
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        sample(out, name, "", labels, None, self.get());
    }
}

impl Metric for Histogram {
    const KIND: &'static str = "histogram";
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or_else(|| "+Inf".to_owned(), |b| number(*b));
            sample(out, name, "_bucket", labels, Some(("le", &le)), cumulative as f64);
        }
        sample(out, name, "_sum", labels, None, self.sum.get());
        sample(out, name, "_count", labels, None, cumulative as f64);
    }
}

impl Metric for Summary {
    const KIND: &'static str = "summary";
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        if let Some(values) = self.quantiles() {
            for (q, v) in QUANTILES.iter().zip(values) {
                sample(out, name, "", labels, Some(("quantile", &number(*q))), v);
            }
        }
        sample(out, name, "_sum", labels, None, self.sum.get());
        sample(out, name, "_count", labels, None, self.count.load(Ordering::Relaxed) as f64);
    }
}

/// A metric family: one name, help text and label names, and its series by label values.
#[derive(Debug)]
pub struct Family<M> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    /// Makes a series (histograms are given their bucket bounds; the others ignore them).
    make: fn(&'static [f64]) -> M,
    bounds: &'static [f64],
    series: RwLock<SeriesMap<M>>,
}

/// A family's series, found by the FNV-1a hash of their label values without building a key: the run path looks
/// series up several times per commit, and an allocation per lookup was a measurable share of its metric cost.
#[derive(Debug)]
struct SeriesMap<M> {
    by_hash: HashMap<u64, Vec<Series<M>>, Identity>,
    len: usize,
}

/// One series: its label values as given (joined by [`KEY_SEP`]), as exposed (cleaned), and its metric.
#[derive(Debug)]
struct Series<M> {
    key: Box<str>,
    labels: Box<[String]>,
    metric: Arc<M>,
}

/// The keys are FNV hashes already.
#[derive(Debug, Default, Clone, Copy)]
struct Identity;

impl std::hash::BuildHasher for Identity {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// Passes a `u64` key through.
#[derive(Debug)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Separates label values in a series key (a control character no label value keeps: see [`clean`]).
const KEY_SEP: char = '\u{1f}';

/// FNV-1a of label values, each followed by [`KEY_SEP`] (label keys are short and not attacker-chosen in bulk:
/// families are capped, so a fast hash is enough).
fn key_hash<'a>(values: impl Iterator<Item = &'a str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.bytes().chain(std::iter::once(KEY_SEP as u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Whether `key` (values joined by [`KEY_SEP`], each followed by one) holds exactly `values`.
fn key_is<'a>(key: &str, values: impl Iterator<Item = &'a str>) -> bool {
    let mut rest = key;
    for v in values {
        match rest.strip_prefix(v).and_then(|r| r.strip_prefix(KEY_SEP)) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

impl<M> SeriesMap<M> {
    fn find(&self, hash: u64, values: &[&str]) -> Option<&Arc<M>> {
        self.by_hash.get(&hash)?.iter().find(|s| key_is(&s.key, values.iter().copied())).map(|s| &s.metric)
    }
}

impl<M: Metric> Family<M> {
    fn with_maker(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        make: fn(&'static [f64]) -> M,
        bounds: &'static [f64],
    ) -> Self {
        let series = RwLock::new(SeriesMap { by_hash: HashMap::with_hasher(Identity), len: 0 });
        let family = Family { name, help, labels, make, bounds, series };
        if labels.is_empty() {
            // An unlabelled family is always exposed, at zero before anything happens.
            family.with(&[]);
        }
        family
    }

    /// The series for `values` (one per label name, in order), created on first use. Past [`MAX_SERIES`] label
    /// sets, a new one shares the series whose values are all `other`.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        let values = &values[..values.len().min(self.labels.len())];
        let hash = key_hash(values.iter().copied());
        if let Ok(series) = self.series.read()
            && let Some(m) = series.find(hash, values)
        {
            return m.clone();
        }
        let Ok(mut series) = self.series.write() else { return Arc::new((self.make)(self.bounds)) };
        if let Some(m) = series.find(hash, values) {
            return m.clone();
        }
        let (hash, values): (u64, Vec<&str>) = if series.len >= MAX_SERIES {
            let other = vec!["other"; self.labels.len()];
            (key_hash(other.iter().copied()), other)
        } else {
            (hash, values.to_vec())
        };
        if let Some(m) = series.find(hash, &values) {
            return m.clone();
        }
        let key: String = values.iter().flat_map(|v| [*v, "\u{1f}"]).collect();
        let labels: Box<[String]> =
            (0..self.labels.len()).map(|i| clean(values.get(i).copied().unwrap_or_default())).collect();
        let metric = Arc::new((self.make)(self.bounds));
        series.by_hash.entry(hash).or_default().push(Series { key: key.into(), labels, metric: metric.clone() });
        series.len += 1;
        metric
    }

    /// Writes the family: `# HELP`, `# TYPE` and every series, sorted by label values (a stable exposition).
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, M::KIND);
        let Ok(series) = self.series.read() else { return };
        let mut rows: Vec<&Series<M>> = series.by_hash.values().flatten().collect();
        rows.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut labels = String::new();
        for row in rows {
            labels.clear();
            for (i, (k, v)) in self.labels.iter().zip(row.labels.iter()).enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                let _ = write!(labels, "{k}=\"{}\"", escape_label(v));
            }
            row.metric.render(out, self.name, &labels);
        }
    }

    /// How many label sets the family holds.
    pub fn len(&self) -> usize {
        self.series.read().map(|s| s.len).unwrap_or_default()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every series (gauges recomputed from scratch on each scrape).
    pub fn clear(&self) {
        if let Ok(mut series) = self.series.write() {
            series.by_hash.clear();
            series.len = 0;
        }
    }
}

impl Family<Counter> {
    /// A counter family (the name ends in `_total`).
    pub fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family::with_maker(name, help, labels, |_| Counter::default(), &[])
    }
}

impl Family<Gauge> {
    /// A gauge family.
    pub fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family::with_maker(name, help, labels, |_| Gauge::default(), &[])
    }
}

impl Family<Summary> {
    /// A summary family.
    pub fn summary(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family::with_maker(name, help, labels, |_| Summary::default(), &[])
    }
}

/// Bucket bounds, in seconds.
pub mod buckets {
    /// Calls and commits: 100 µs to 30 s.
    pub const LATENCY: &[f64] =
        &[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
    /// Runs, nodes, waits: 1 ms to a week (a run may wait days for an approval).
    pub const LONG: &[f64] = &[
        0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
        604800.0,
    ];
}

impl Family<Histogram> {
    /// A histogram family with `bounds` (seconds, ascending).
    pub fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Family::with_maker(name, help, labels, Histogram::new, bounds)
    }
}

/// One sample line.
fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, extra: Option<(&str, &str)>, value: f64) {
    out.push_str(name);
    out.push_str(suffix);
    match (labels.is_empty(), extra) {
        (true, None) => {}
        (true, Some((k, v))) => {
            let _ = write!(out, "{{{k}=\"{v}\"}}");
        }
        (false, None) => {
            let _ = write!(out, "{{{labels}}}");
        }
        (false, Some((k, v))) => {
            let _ = write!(out, "{{{labels},{k}=\"{v}\"}}");
        }
    }
    out.push(' ');
    out.push_str(&number(value));
    out.push('\n');
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, else the shortest exact decimal).
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// A label value as stored: control characters dropped, cut to [`MAX_LABEL_BYTES`].
fn clean(v: &str) -> String {
    let mut out = String::with_capacity(v.len().min(MAX_LABEL_BYTES));
    for c in v.chars().filter(|c| !c.is_control() || *c == '\n') {
        if out.len() + c.len_utf8() > MAX_LABEL_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// A label value escaped for the exposition: backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Help text escaped: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A metric name made valid: characters outside `[a-zA-Z0-9_:]` become `_`, and a leading digit gets a `_`
/// before it (LangOrch wrote custom names unchecked, breaking the exposition).
pub fn sanitize_name(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_escaped_labels_sorted() {
        let f = Family::counter("x_total", "Things.\nCounted", &["a", "b"]);
        f.with(&["z", "1"]).inc();
        f.with(&["q\"uo\\te", "new\nline"]).add(2.5);
        f.with(&["z", "1"]).inc();
        let mut out = String::new();
        f.render(&mut out);
        assert_eq!(
            out,
            "# HELP x_total Things.\\nCounted\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uo\\\\te\",b=\"new\\nline\"} 2.5\nx_total{a=\"z\",b=\"1\"} 2\n"
        );
    }

    #[test]
    fn unlabelled_families_start_at_zero_and_counters_ignore_negative() {
        let f = Family::counter("y_total", "Y.", &[]);
        f.with(&[]).add(-3.0);
        f.with(&[]).add(f64::NAN);
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.ends_with("y_total 0\n"), "{out}");
    }

    #[test]
    fn histograms_are_cumulative_with_inf() {
        let f = Family::histogram("h_seconds", "H.", &["k"], buckets::LATENCY);
        let h = f.with(&["v"]);
        h.observe(0.0001);
        h.observe(0.003);
        h.observe(100.0);
        h.observe(f64::INFINITY);
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.contains("h_seconds_bucket{k=\"v\",le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("h_seconds_bucket{k=\"v\",le=\"0.0025\"} 1\n"), "{out}");
        assert!(out.contains("h_seconds_bucket{k=\"v\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("h_seconds_bucket{k=\"v\",le=\"30\"} 2\n"), "{out}");
        assert!(out.contains("h_seconds_bucket{k=\"v\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("h_seconds_count{k=\"v\"} 3\n"), "{out}");
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn summaries_report_nearest_rank_quantiles_of_a_bounded_window() {
        let f = Family::summary("s_seconds", "S.", &[]);
        let s = f.with(&[]);
        for i in 1..=100 {
            s.observe(f64::from(i));
        }
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.contains("s_seconds{quantile=\"0.5\"} 50\n"), "{out}");
        assert!(out.contains("s_seconds{quantile=\"0.95\"} 95\n"), "{out}");
        assert!(out.contains("s_seconds{quantile=\"1\"} 100\n"), "{out}");
        assert!(out.contains("s_seconds_sum 5050\n"), "{out}");
        for _ in 0..WINDOW {
            s.observe(1.0);
        }
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.contains("s_seconds{quantile=\"1\"} 1\n"), "the window forgot the old maximum: {out}");
        assert!(out.contains(&format!("s_seconds_count {}\n", 100 + WINDOW)), "{out}");
    }

    #[test]
    fn families_cap_their_label_sets() {
        let f = Family::counter("c_total", "C.", &["id"]);
        for i in 0..MAX_SERIES + 50 {
            f.with(&[&i.to_string()]).inc();
        }
        assert_eq!(f.len(), MAX_SERIES + 1);
        assert_eq!(f.with(&["another"]).get(), 50.0, "the overflow series counts what did not fit");
    }

    #[test]
    fn long_label_values_are_cut_at_a_character_boundary() {
        let f = Family::gauge("g", "G.", &["v"]);
        f.with(&[&"é".repeat(100)]).set(1.0);
        let mut out = String::new();
        f.render(&mut out);
        let value = out.lines().last().and_then(|l| l.split('"').nth(1)).unwrap_or_default().to_owned();
        assert_eq!(value.len(), 128);
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("my-metric.count"), "my_metric_count");
        assert_eq!(sanitize_name("9lives"), "_9lives");
        assert_eq!(sanitize_name(""), "_");
    }
}
