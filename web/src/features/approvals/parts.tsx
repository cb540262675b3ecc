// Pieces both approval screens show: the expiry countdown, the overdue/stale flags and the inline decision buttons.
import { useState } from 'react';
import { Link } from 'react-router';
import { useConfirm } from '../../components/Dialog';
import { useToast } from '../../components/Toasts';
import { dateTime } from '../../lib/format';
import { countdown, decide, flagsOf, optionsOf, useRecordDecision, useRunProcedure, type Approval } from './api';

export function Expiry({ approval, now }: { approval: Approval; now: number }) {
  const { left } = flagsOf(approval, now);
  if (left === null) return <span className="muted">No expiry</span>;
  if (approval.status !== 'pending') return <span title={dateTime(approval.expires_at)}>{dateTime(approval.expires_at)}</span>;
  return (
    <span title={`Expires ${dateTime(approval.expires_at)}`} className={left < 0 ? 'approvals-late' : undefined}>
      {left < 0 ? countdown(left) : `in ${countdown(left)}`}
    </span>
  );
}

export function FlagBadges({ approval, now }: { approval: Approval; now: number }) {
  const f = flagsOf(approval, now);
  if (!f.overdue && !f.stale) return null;
  return (
    <span className="approvals-flags">
      {f.overdue && (
        <span className="badge err" title="Past its expiry and still pending">
          Overdue
        </span>
      )}
      {f.stale && (
        <span className="badge warn" title="Pending for more than 24 hours">
          Stale
        </span>
      )}
    </span>
  );
}

export function ProcedureLink({ runId }: { runId: string }) {
  const p = useRunProcedure(runId);
  if (!p.data) return <span className="muted">{p.isError ? 'run not found' : '…'}</span>;
  return (
    <Link to={`/procedures/${encodeURIComponent(p.data.procedure_id)}/${encodeURIComponent(p.data.procedure_version)}`}>
      {p.data.procedure_id}@{p.data.procedure_version}
    </Link>
  );
}

/** Approve/Reject in a row of the inbox; an approval with options or free input is decided on its page. */
export function InlineDecision({ approval }: { approval: Approval }) {
  const [busy, setBusy] = useState(false);
  const confirm = useConfirm();
  const toast = useToast();
  const record = useRecordDecision();
  if (approval.status !== 'pending') return null;
  const detail = `/approvals/${encodeURIComponent(approval.approval_id)}`;
  if (optionsOf(approval).length > 0 || approval.decision_type !== 'approve_reject') {
    return (
      <Link className="button small" to={detail} aria-label={`Decide: ${approval.prompt}`}>
        Decide…
      </Link>
    );
  }
  const go = async (decision: 'approved' | 'rejected') => {
    if (
      decision === 'rejected' &&
      !(await confirm({ title: 'Reject approval', message: `Reject “${approval.prompt}”?`, confirm: 'Reject', danger: true }))
    )
      return;
    setBusy(true);
    try {
      record(await decide(approval.approval_id, { decision }));
      toast.show(`${decision === 'approved' ? 'Approved' : 'Rejected'}: ${approval.prompt}`, 'success');
    } catch (e) {
      toast.error(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="approvals-actions">
      <button className="small primary" disabled={busy} onClick={() => void go('approved')} aria-label={`Approve: ${approval.prompt}`}>
        Approve
      </button>
      <button className="small danger" disabled={busy} onClick={() => void go('rejected')} aria-label={`Reject: ${approval.prompt}`}>
        Reject
      </button>
    </span>
  );
}
