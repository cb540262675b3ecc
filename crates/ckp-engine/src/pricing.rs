//! LLM prices per 1,000 tokens, used to estimate a run's cost and enforce `max_cost_usd` (semantics B §7.10,
//! with ckp's fix: dated model names such as `gpt-4o-2024-08-06` are priced as their base model, not as gpt-4).

/// `(model prefix, prompt price, completion price)` per 1,000 tokens, most specific prefix first.
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.000_15, 0.000_6),
    ("gpt-4o", 0.005, 0.015),
    ("gpt-4-turbo", 0.01, 0.03),
    ("gpt-4-32k", 0.06, 0.12),
    ("gpt-4", 0.03, 0.06),
    ("gpt-3.5-turbo", 0.000_5, 0.001_5),
    ("claude-3-5-sonnet", 0.003, 0.015),
    ("claude-3-opus", 0.015, 0.075),
    ("claude-3-sonnet", 0.003, 0.015),
    ("claude-3-haiku", 0.000_25, 0.001_25),
    ("mistral-large", 0.004, 0.012),
    ("mistral-medium", 0.002_7, 0.008_1),
    ("mistral-small", 0.001, 0.003),
];

/// The estimated cost of a call in USD. The model's provider prefix (`openai/`) is ignored; unknown models are
/// priced as gpt-4 (the conservative choice for a budget).
pub fn cost_usd(model: &str, prompt_tokens: u64, completion_tokens: u64) -> f64 {
    let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    let (p, c) =
        PRICES.iter().find(|(prefix, _, _)| name.starts_with(prefix)).map_or((0.03, 0.06), |(_, p, c)| (*p, *c));
    (prompt_tokens as f64 * p + completion_tokens as f64 * c) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::cost_usd;

    #[test]
    fn prices() {
        assert!((cost_usd("gpt-4", 1000, 500) - 0.06).abs() < 1e-9);
        assert!((cost_usd("openai/gpt-4o-2024-08-06", 1000, 1000) - 0.02).abs() < 1e-9);
        assert!((cost_usd("gpt-4o-mini", 1000, 0) - 0.000_15).abs() < 1e-12);
        assert!((cost_usd("some-new-model", 1000, 1000) - 0.09).abs() < 1e-9);
    }
}
