// One approval: its prompt, context data, options, the run and node it belongs to, and the decision form (a choice
// among `options` when it has them, free input for `provide_input`, else Approve/Reject) with a comment. Who
// decides is the signed-in identity, taken by the server: nothing to type.
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { ApiError } from '../api/client';
import { ErrorBanner, JsonDetails, PageHead, QueryState, StatusBadge } from '../components/Bits';
import { useConfirm } from '../components/Dialog';
import { useToast } from '../components/Toasts';
import {
  decide,
  Expiry,
  FlagBadges,
  optionsOf,
  ProcedureLink,
  useApproval,
  useApprovalStream,
  useRecordDecision,
  type Approval,
} from '../features/approvals';
import { useNow } from '../lib/clock';
import { dateTime, relative } from '../lib/format';
import './runs.css';

export default function ApprovalDetail() {
  const { approvalId = '' } = useParams();
  const approval = useApproval(approvalId);
  // The stream keeps this approval current when someone else decides it or it expires.
  useApprovalStream();
  const now = useNow(1000);
  const a = approval.data;
  return (
    <>
      <PageHead
        title={a ? a.prompt || 'Approval' : 'Approval'}
        sub={
          <Link to="/approvals" className="muted">
            ← Approvals inbox
          </Link>
        }
      >
        {a && <StatusBadge status={a.status} />}
      </PageHead>
      <QueryState loading={approval.isLoading} error={approval.error}>
        {a && (
          <div className="grid two">
            <section className="card approval-about" aria-labelledby="approval-about">
              <h2 id="approval-about">About</h2>
              <dl className="props">
                <dt>Run</dt>
                <dd>
                  <Link to={`/runs/${encodeURIComponent(a.run_id)}`} className="mono">
                    {a.run_id}
                  </Link>
                  {a.run_status && (
                    <>
                      {' '}
                      <StatusBadge status={a.run_status} />
                    </>
                  )}
                </dd>
                <dt>Procedure</dt>
                <dd>
                  <ProcedureLink runId={a.run_id} />
                </dd>
                <dt>Node</dt>
                <dd>
                  <Link
                    to={`/runs/${encodeURIComponent(a.run_id)}?node=${encodeURIComponent(a.node_id)}`}
                    className="mono"
                    aria-label={`Node ${a.node_id} in the run`}
                  >
                    {a.node_id}
                  </Link>
                </dd>
                <dt>Decision type</dt>
                <dd>{a.decision_type.replace(/_/g, ' ')}</dd>
                <dt>Created</dt>
                <dd title={dateTime(a.created_at)}>
                  {relative(a.created_at, now)} <FlagBadges approval={a} now={now} />
                </dd>
                <dt>Expires</dt>
                <dd>
                  <Expiry approval={a} now={now} />
                </dd>
                {a.decided_at && (
                  <>
                    <dt>Decided</dt>
                    <dd>
                      {dateTime(a.decided_at)}
                      {a.decided_by ? ` by ${a.decided_by}` : ''}
                    </dd>
                  </>
                )}
                {a.comment && (
                  <>
                    <dt>Comment</dt>
                    <dd>{a.comment}</dd>
                  </>
                )}
              </dl>
              {optionsOf(a).length > 0 && (
                <>
                  <h3>Options</h3>
                  <ul>
                    {optionsOf(a).map((o) => (
                      <li key={o.label}>{o.label}</li>
                    ))}
                  </ul>
                </>
              )}
              <h3>Context</h3>
              {a.context_data == null ? (
                <p className="muted">No context data.</p>
              ) : (
                <JsonDetails value={a.context_data} summary="Context data (JSON)" />
              )}
            </section>
            <section className="card" aria-labelledby="approval-decide">
              <h2 id="approval-decide">Decision</h2>
              {a.status === 'pending' ? <DecisionForm approval={a} /> : <Decided approval={a} />}
            </section>
          </div>
        )}
      </QueryState>
    </>
  );
}

function Decided({ approval: a }: { approval: Approval }) {
  return (
    <div className="approval-decided">
      <p>
        Decided: <StatusBadge status={a.status} />
        {a.decided_by && ` by ${a.decided_by}`}
        {a.decided_at && `, ${dateTime(a.decided_at)}`}.
      </p>
      {a.decision_payload != null && <JsonDetails value={a.decision_payload} summary="Decision payload" />}
    </div>
  );
}

function DecisionForm({ approval: a }: { approval: Approval }) {
  const options = optionsOf(a);
  const [choice, setChoice] = useState<number | null>(null);
  const [input, setInput] = useState('');
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const confirm = useConfirm();
  const toast = useToast();
  const record = useRecordDecision();
  const navigate = useNavigate();

  const send = async (decision: unknown, label: string) => {
    setBusy(true);
    setError(null);
    try {
      const done = await decide(a.approval_id, { decision, ...(comment.trim() ? { comment: comment.trim() } : {}) });
      record(done);
      toast.show(`Decision recorded: ${label} (${done.status.replace(/_/g, ' ')})`, 'success');
      navigate('/approvals');
    } catch (e) {
      setError(e);
      if (e instanceof ApiError && e.status === 409) toast.error(e);
    } finally {
      setBusy(false);
    }
  };

  const submitChoice = (e: FormEvent) => {
    e.preventDefault();
    if (options.length > 0) {
      if (choice === null) {
        setError(new Error('Choose one of the options first.'));
        return;
      }
      void send(options[choice].value, options[choice].label);
    } else if (a.decision_type === 'provide_input') {
      if (!input.trim()) {
        setError(new Error('Type the input first.'));
        return;
      }
      void send(input.trim(), input.trim());
    }
  };

  const reject = async () => {
    if (await confirm({ title: 'Reject approval', message: `Reject “${a.prompt}”?`, confirm: 'Reject', danger: true })) {
      void send('rejected', 'Rejected');
    }
  };

  const commentField = (
    <label>
      Comment
      <textarea value={comment} onChange={(e) => setComment(e.target.value)} rows={3} />
      <span className="field-help">Kept with the decision. Your name is recorded by the server.</span>
    </label>
  );

  return (
    <form className="form-grid" onSubmit={submitChoice}>
      {options.length > 0 ? (
        <fieldset className="approval-options">
          <legend>Choose</legend>
          {options.map((o, i) => (
            <label className="inline" key={o.label}>
              <input type="radio" name="choice" checked={choice === i} onChange={() => setChoice(i)} />
              {o.label}
            </label>
          ))}
        </fieldset>
      ) : a.decision_type === 'provide_input' ? (
        <label>
          Input
          <input value={input} onChange={(e) => setInput(e.target.value)} />
        </label>
      ) : null}
      {commentField}
      {error !== null && <ErrorBanner error={error} />}
      <div className="toolbar">
        {options.length > 0 || a.decision_type === 'provide_input' ? (
          <button type="submit" className="primary" disabled={busy}>
            Submit decision
          </button>
        ) : (
          <>
            <button type="button" className="primary" disabled={busy} onClick={() => void send('approved', 'Approved')}>
              Approve
            </button>
            <button type="button" className="danger" disabled={busy} onClick={() => void reject()}>
              Reject
            </button>
          </>
        )}
      </div>
    </form>
  );
}
