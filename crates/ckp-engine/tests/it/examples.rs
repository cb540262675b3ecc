//! The three hybrid procedures of `examples/`, end to end with test agents and a test LLM.

use std::sync::Arc;

use ckp_core::Procedure;
use ckp_engine::effects::{Effects, LlmRequest, LlmResponse};
use ckp_engine::testing::{FnAgents, FnLlm};
use ckp_engine::{Decision, RunOutcome, StepError};
use serde_json::{Value, json};

use crate::support::{Harness, completed, inputs};

fn example(name: &str) -> Arc<Procedure> {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let c = ckp_core::compile(&text);
    assert!(c.diagnostics.is_empty(), "{name}: {:#?}", c.diagnostics);
    Arc::new(c.procedure.unwrap_or_else(|| panic!("{name} does not compile")))
}

fn reply(text: Value) -> Result<LlmResponse, StepError> {
    Ok(LlmResponse {
        text: text.to_string(),
        model: "gpt-4o-2024-08-06".into(),
        prompt_tokens: 400,
        completion_tokens: 100,
    })
}

fn agents() -> FnAgents {
    FnAgents::new(|req| {
        Ok(match req.action.as_str() {
            "ingest_document" => json!({"id": "DOC-1", "text": "Invoice ACME ... PO-7"}),
            "get_purchase_order" => json!({"po_number": req.params["po_number"], "amount": 1200}),
            "erp_post_invoice" => json!({"id": "ERP-1"}),
            "get_ticket" => json!({"customer_id": "C1", "subject": "help", "body": "my thing broke"}),
            "get_account" => json!({"tier": "gold"}),
            "list_open_cases" => json!([{"id": 1}]),
            "send_for_esignature" => json!({"id": "ENV-9"}),
            _ => json!({"ok": true}),
        })
    })
}

fn harness(
    llm: impl Fn(&LlmRequest) -> Result<LlmResponse, StepError> + Send + Sync + 'static,
) -> (Harness, FnAgents, FnLlm) {
    let agents = agents();
    let llm = FnLlm::new(llm);
    let effects =
        Effects { agents: Some(Arc::new(agents.clone())), llm: Some(Arc::new(llm.clone())), ..Effects::default() };
    (Harness::new(effects), agents, llm)
}

fn invoice_llm(risk: f64) -> impl Fn(&LlmRequest) -> Result<LlmResponse, StepError> {
    move |req| {
        if req.prompt.starts_with("Extract vendor") {
            reply(
                json!({"vendor": "ACME", "amount": 1200, "line_items": [{"description": "bolts", "amount": 1200}], "po_number": "PO-7"}),
            )
        } else {
            reply(
                json!({"risk_score": risk, "flags": if risk > 0.6 { json!(["amount mismatch"]) } else { json!([]) }, "recommendation": "pay"}),
            )
        }
    }
}

#[tokio::test]
async fn invoice_low_risk_is_auto_approved() {
    let p = example("invoice_processing.ckp.json");
    let (h, agents, llm) = harness(invoice_llm(0.2));
    let out = h.start(&p, inputs(json!({"document_url": "https://files/inv.pdf"}))).await;
    let vars = completed(&out);
    assert_eq!(vars["approved_by"], "auto");
    assert_eq!(vars["erp_id"], "ERP-1");
    assert_eq!(llm.calls().len(), 2);
    let erp: Vec<_> = agents.calls().into_iter().filter(|c| c.action == "erp_post_invoice").collect();
    assert_eq!(erp.len(), 1);
    assert_eq!(erp[0].idempotency_key, "invoice-PO-7-1200");
}

#[tokio::test]
async fn invoice_high_risk_waits_for_a_manager() {
    let p = example("invoice_processing.ckp.json");
    let (h, _, _) = harness(invoice_llm(0.9));
    let out = h.start(&p, inputs(json!({"document_url": "https://files/inv.pdf"}))).await;
    let RunOutcome::WaitingApproval(pending) = out else { panic!("{out:?}") };
    assert_eq!(pending[0].node_id, "manager_approval");
    assert_eq!(pending[0].approval_level.as_deref(), Some("manager"));
    assert!(pending[0].prompt.contains("scored risk 0.9"), "{}", pending[0].prompt);
    assert!(pending[0].expires_at.is_some(), "48 h expiry");
    let d = Decision { key: None, value: json!("approve"), decided_by: Some("manager".into()), comment: None };
    let out = h.engine().decide(p.clone(), "run-1", d).await.expect("decides");
    assert_eq!(completed(&out)["erp_id"], "ERP-1");
}

#[tokio::test]
async fn invoice_budget_caps_the_llm_calls() {
    let p = example("invoice_processing.ckp.json");
    let normal = invoice_llm(0.2);
    let (h, _, _) = harness(move |req| {
        normal(req).map(|r| LlmResponse { model: "gpt-4".into(), prompt_tokens: 10_000, completion_tokens: 2_000, ..r })
    });
    let out = h.start(&p, inputs(json!({"document_url": "https://files/inv.pdf"}))).await;
    assert!(matches!(out, RunOutcome::Failed { .. }), "{out:?}");
    let budget = h.events().into_iter().find(|e| e.event_type == "budget_exceeded").expect("budget_exceeded event");
    assert!(budget.payload["message"].as_str().unwrap_or("").contains("max_cost_usd=0.5"));
    let cp = h.journal.checkpoint("run-1").expect("checkpoint");
    assert_eq!(cp.error.map(|e| e.node_id), Some(Some("assess_risk".to_owned())), "the second call trips the budget");
}

fn support_llm(
    category: &'static str,
    urgency: &'static str,
) -> impl Fn(&LlmRequest) -> Result<LlmResponse, StepError> {
    move |req| {
        if req.prompt.starts_with("Classify") {
            reply(json!({"category": category, "urgency": urgency, "sentiment": "negative"}))
        } else {
            Ok(LlmResponse {
                text: "Sorry about that, we are on it.".into(),
                model: "gpt-4o-mini".into(),
                prompt_tokens: 50,
                completion_tokens: 10,
            })
        }
    }
}

#[tokio::test]
async fn support_routes_by_classification() {
    let p = example("customer_support.ckp.json");
    for (category, urgency, action) in [
        ("technical", "critical", "page_oncall"),
        ("technical", "high", "assign_queue"),
        ("billing", "low", "assign_queue"),
        ("other", "low", "send_reply"),
    ] {
        let (h, agents, _) = harness(support_llm(category, urgency));
        let out = h.start(&p, inputs(json!({"ticket_id": "T-1"}))).await;
        let vars = completed(&out);
        assert_eq!(vars["category"], category);
        let actions: Vec<String> = agents.calls().into_iter().map(|c| c.action).collect();
        assert!(actions.contains(&action.to_owned()), "{category}/{urgency}: {actions:?}");
        assert_eq!(actions.last().map(String::as_str), Some("update_ticket"));
        if category == "technical" && urgency == "critical" {
            insta::assert_snapshot!("support_critical_trace", h.trace());
        }
    }
}

#[tokio::test]
async fn support_reply_with_pii_is_stopped() {
    let p = example("customer_support.ckp.json");
    let (h, agents, _) = harness(|req: &LlmRequest| {
        if req.prompt.starts_with("Classify") {
            reply(json!({"category": "other", "urgency": "low", "sentiment": "neutral"}))
        } else {
            Ok(LlmResponse {
                text: "Write to bob@example.com".into(),
                model: "gpt-4o-mini".into(),
                prompt_tokens: 5,
                completion_tokens: 5,
            })
        }
    });
    let out = h.start(&p, inputs(json!({"ticket_id": "T-2"}))).await;
    let RunOutcome::Failed { error } = out else { panic!("{out:?}") };
    assert_eq!(error.message, "the reply contains an email address");
    assert!(!agents.calls().iter().any(|c| c.action == "send_reply"));
}

fn contract_llm() -> impl Fn(&LlmRequest) -> Result<LlmResponse, StepError> {
    |req| {
        if req.prompt.starts_with("Extract parties") {
            reply(
                json!({"parties": ["Us", "Them"], "effective_date": "2026-01-01", "end_date": "2027-01-01", "jurisdiction": "England",
                         "clauses": [{"title": "Term", "text": "..."}, {"title": "Liability", "text": "..."}]}),
            )
        } else if req.prompt.contains("review") {
            reply(json!({"verdict": "ok", "notes": "fine"}))
        } else {
            Ok(LlmResponse {
                text: "All good.".into(),
                model: "gpt-4o".into(),
                prompt_tokens: 10,
                completion_tokens: 10,
            })
        }
    }
}

async fn contract_with(decisions: [&str; 3]) -> (RunOutcome, Harness, FnAgents) {
    let p = example("contract_review.ckp.json");
    let (h, agents, _) = harness(contract_llm());
    let mut out = h.start(&p, inputs(json!({"contract_url": "https://files/c.pdf"}))).await;
    let RunOutcome::WaitingApproval(pending) = &out else { panic!("{out:?}") };
    assert_eq!(pending.len(), 3, "three approvals in parallel");
    assert_eq!(pending[0].context_data["clauses"], json!(["Term", "Liability"]));
    let keys: Vec<String> = pending.iter().map(|a| a.key.clone()).collect();
    for (key, value) in keys.into_iter().zip(decisions) {
        let d = Decision { key: Some(key), value: json!(value), decided_by: None, comment: None };
        out = h.engine().decide(p.clone(), "run-1", d).await.expect("decides");
    }
    (out, h, agents)
}

#[tokio::test]
async fn contract_all_approve_goes_to_esignature() {
    let (out, h, agents) = contract_with(["approve", "approve", "approve"]).await;
    let trace_text = h.trace();
    let vars = completed(&out);
    assert_eq!(vars["outcome"], "sent for signature");
    assert_eq!(vars["envelope"]["id"], "ENV-9");
    assert!(agents.calls().iter().any(|c| c.action == "update_contract_registry"));
    insta::assert_snapshot!("contract_approved_trace", trace_text);
}

#[tokio::test]
async fn contract_one_rejection_leads_to_a_revision_brief() {
    let (out, h, agents) = contract_with(["approve", "reject", "approve"]).await;
    assert!(matches!(out, RunOutcome::Failed { .. }), "{out:?}");
    let cp = h.journal.checkpoint("run-1").expect("checkpoint");
    let outputs = cp.outputs.expect("outputs");
    assert_eq!(outputs["outcome"], "revision requested");
    assert_eq!(outputs["revision_brief"], "All good.");
    assert!(!agents.calls().iter().any(|c| c.action == "send_for_esignature"));
}
