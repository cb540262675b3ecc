//! LLM prices per 1,000 tokens, used to estimate a run's cost and enforce `max_cost_usd` (langorch.md B §7.10,
//! with ckp's fix: dated model names such as `gpt-4o-2024-08-06` are priced as their base model, not as gpt-4).
//! The defaults can be overridden and extended by configuration ([`PriceTable::with`]: `llm_prices` in `ckp
//! serve`'s TOML, `CKP_LLM_PRICES` as JSON for `ckp serve` and `ckp run`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `(model prefix, prompt price, completion price)` per 1,000 tokens.
const DEFAULTS: &[(&str, f64, f64)] = &[
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

/// The model whose prices apply to models the table does not know (the conservative choice for a budget).
const FALLBACK: &str = "gpt-4";

/// The prices of one model (or model-name prefix), USD per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Per 1,000 prompt tokens.
    pub prompt: f64,
    /// Per 1,000 completion tokens.
    pub completion: f64,
}

/// Prices by model-name prefix; the longest matching prefix wins.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    /// Longest prefix first.
    entries: Vec<(String, ModelPrice)>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::from_entries(
            DEFAULTS.iter().map(|(m, p, c)| ((*m).to_owned(), ModelPrice { prompt: *p, completion: *c })).collect(),
        )
    }
}

impl PriceTable {
    fn from_entries(mut entries: Vec<(String, ModelPrice)>) -> Self {
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        PriceTable { entries }
    }

    /// The defaults with `overrides` merged over them: a model named in both takes the override, new models are
    /// added. Model names are matched case-insensitively. Errors name a negative or non-finite price.
    pub fn with(overrides: &BTreeMap<String, ModelPrice>) -> Result<Self, String> {
        let mut table: BTreeMap<String, ModelPrice> = Self::default().entries.into_iter().collect();
        for (model, price) in overrides {
            let model = model.trim().to_ascii_lowercase();
            if model.is_empty() {
                return Err("llm_prices: a model name is empty".into());
            }
            for (what, v) in [("prompt", price.prompt), ("completion", price.completion)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("llm_prices: the {what} price of {model} must be a number >= 0, not {v}"));
                }
            }
            table.insert(model, *price);
        }
        Ok(Self::from_entries(table.into_iter().collect()))
    }

    /// Parses `CKP_LLM_PRICES`: `{"model": {"prompt": 0.001, "completion": 0.002}, ...}` per 1,000 tokens.
    pub fn parse_overrides(json: &str) -> Result<BTreeMap<String, ModelPrice>, String> {
        serde_json::from_str(json).map_err(|e| {
            format!("llm prices must be JSON like {{\"model\": {{\"prompt\": 0.001, \"completion\": 0.002}}}}: {e}")
        })
    }

    /// The prices applied to `model`: its provider prefix (`openai/`) ignored, the longest known prefix, else the
    /// gpt-4 entry.
    pub fn price(&self, model: &str) -> ModelPrice {
        let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
        let find = |n: &str| self.entries.iter().find(|(prefix, _)| n.starts_with(prefix.as_str())).map(|(_, p)| *p);
        find(&name).or_else(|| find(FALLBACK)).unwrap_or(ModelPrice { prompt: 0.03, completion: 0.06 })
    }

    /// The estimated cost of a call in USD.
    pub fn cost_usd(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        let p = self.price(model);
        (prompt_tokens as f64 * p.prompt + completion_tokens as f64 * p.completion) / 1000.0
    }
}

/// The estimated cost of a call in USD at the default prices.
pub fn cost_usd(model: &str, prompt_tokens: u64, completion_tokens: u64) -> f64 {
    PriceTable::default().cost_usd(model, prompt_tokens, completion_tokens)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{ModelPrice, PriceTable, cost_usd};

    #[test]
    fn prices() {
        assert!((cost_usd("gpt-4", 1000, 500) - 0.06).abs() < 1e-9);
        assert!((cost_usd("openai/gpt-4o-2024-08-06", 1000, 1000) - 0.02).abs() < 1e-9);
        assert!((cost_usd("gpt-4o-mini", 1000, 0) - 0.000_15).abs() < 1e-12);
        assert!((cost_usd("some-new-model", 1000, 1000) - 0.09).abs() < 1e-9);
    }

    #[test]
    fn overrides_merge_over_the_defaults() {
        let overrides = PriceTable::parse_overrides(
            r#"{"GPT-4o": {"prompt": 0.0025, "completion": 0.01}, "llama-3": {"prompt": 0, "completion": 0},
                "gpt-4": {"prompt": 0.01, "completion": 0.02}}"#,
        )
        .expect("parses");
        let table = PriceTable::with(&overrides).expect("valid");
        // Overridden (case-insensitively), dated names included.
        assert!((table.cost_usd("gpt-4o-2024-08-06", 1000, 1000) - 0.0125).abs() < 1e-12);
        // Added.
        assert_eq!(table.cost_usd("llama-3-70b", 5000, 5000), 0.0);
        // Untouched defaults stay; the longer prefix still wins over an overridden shorter one.
        assert!((table.cost_usd("gpt-4o-mini", 1000, 0) - 0.000_15).abs() < 1e-12);
        assert!((table.cost_usd("claude-3-opus", 1000, 0) - 0.015).abs() < 1e-12);
        // Unknown models take the (overridden) gpt-4 prices.
        assert!((table.cost_usd("mystery", 1000, 1000) - 0.03).abs() < 1e-12);
    }

    #[test]
    fn bad_prices_are_refused() {
        let negative = BTreeMap::from([("x".to_owned(), ModelPrice { prompt: -1.0, completion: 0.0 })]);
        assert!(PriceTable::with(&negative).expect_err("negative").contains("prompt price of x"));
        let empty = BTreeMap::from([(" ".to_owned(), ModelPrice { prompt: 1.0, completion: 0.0 })]);
        assert!(PriceTable::with(&empty).is_err());
        assert!(PriceTable::parse_overrides(r#"{"x": {"prompt": 1}}"#).is_err(), "both prices are required");
        assert!(PriceTable::parse_overrides(r#"{"x": {"prompt": 1, "completion": 1, "extra": 2}}"#).is_err());
        assert!(PriceTable::parse_overrides("[1]").is_err());
    }
}
