//! `human_approval` (A.2.8): with a decision recorded for this visit, route by it; without one, pause. Decisions
//! belong to one visit of one thread, so a loop that comes back asks again, and an approval inside a loop body or a
//! parallel branch resumes exactly there (re-execution reaches it with the decision present).

use ckp_core::procedure::{Approval, DecisionType, Node, TimeoutAction};
use serde_json::{Map, Value, json};

use crate::journal::PendingApproval;
use crate::run::{Ctx, Flow, Runner};

impl Runner<'_> {
    pub(crate) fn exec_approval(
        &self,
        ctx: &Ctx,
        vars: &mut Map<String, Value>,
        node: &Node,
        visit: u32,
        a: &Approval,
    ) -> Flow {
        let key = format!("{}|{}#{}", ctx.thread, node.id, visit);
        let decision = self.core().base.decisions.get(&key).cloned();
        if let Some(decision) = decision {
            let target = match decision.as_str() {
                Some("approved") => a.on_approve,
                Some("rejected") => a.on_reject,
                Some("timed_out") => match a.timeout_action {
                    Some(TimeoutAction::AutoApprove) => a.on_approve,
                    Some(TimeoutAction::AutoReject) => a.on_reject,
                    Some(TimeoutAction::Escalate) | None => a.on_timeout.or(a.on_reject),
                },
                _ => a.on_approve,
            };
            vars.insert(format!("{}_decision", node.id), decision.clone());
            let all = vars.entry("__approval_decisions").or_insert_with(|| json!({}));
            if let Value::Object(m) = all {
                m.insert(node.id.clone(), decision);
            }
            return Flow::Next(target);
        }
        let expires_at = a.timeout_ms.map(|ms| {
            self.effects.clock.now() + chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2))
        });
        let pending = PendingApproval {
            key: key.clone(),
            node_id: node.id.clone(),
            node_name: node.name.clone(),
            prompt: a.prompt.render_text(vars),
            decision_type: match a.decision_type {
                DecisionType::ApproveReject => "approve_reject",
                DecisionType::SelectOption => "select_option",
                DecisionType::ProvideInput => "provide_input",
            }
            .to_owned(),
            options: a.options.as_ref().map_or(Value::Null, |o| o.render(vars)),
            context_data: a.context_data.as_ref().map_or(Value::Null, |c| c.render(vars)),
            expires_at,
            timeout_action: a.timeout_action.map(|t| {
                match t {
                    TimeoutAction::AutoApprove => "auto_approve",
                    TimeoutAction::AutoReject => "auto_reject",
                    TimeoutAction::Escalate => "escalate",
                }
                .to_owned()
            }),
            approval_level: a.approval_level.clone(),
            approvers: a.approvers.clone(),
            escalation_contact: a.escalation_contact.clone(),
        };
        self.mark_pause(ctx);
        self.emit(
            ctx,
            "approval_requested",
            Some(&node.id),
            None,
            json!({"approval_id": crate::journal::approval_id(&self.run_id, &key), "node_name": node.name}),
        );
        Flow::Pause(vec![pending])
    }
}
