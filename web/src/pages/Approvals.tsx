// The approvals inbox: pending approvals live over the approvals stream, resolved and all approvals on their tabs
// (the tab is in the URL), each with its expiry countdown, overdue and stale flags, and inline decisions.
import { Link, useSearchParams } from 'react-router';
import { Empty, PageHead, QueryState, StatusBadge, TabPanel, Tabs } from '../components/Bits';
import {
  Expiry,
  flagsOf,
  FlagBadges,
  InlineDecision,
  ProcedureLink,
  useAllApprovals,
  useApprovalStream,
  usePendingApprovals,
  type Approval,
} from '../features/approvals';
import { useNow } from '../lib/clock';
import { dateTime, relative, shortId } from '../lib/format';
import './runs.css';

type Tab = 'pending' | 'resolved' | 'all';
const TABS: Tab[] = ['pending', 'resolved', 'all'];

const STREAM_TEXT = { connecting: 'Connecting…', open: 'Live', error: 'Reconnecting…', closed: 'Not live' } as const;

export default function Approvals() {
  const [params, setParams] = useSearchParams();
  const tab: Tab = TABS.includes(params.get('tab') as Tab) ? (params.get('tab') as Tab) : 'pending';
  const stream = useApprovalStream();
  const pending = usePendingApprovals();
  const all = useAllApprovals(tab !== 'pending');
  const now = useNow(1000);

  const source = tab === 'pending' ? pending : all;
  const rows = (source.data ?? []).filter((a) => (tab === 'resolved' ? a.status !== 'pending' : true));
  const overdue = (pending.data ?? []).filter((a) => flagsOf(a, now).overdue).length;

  return (
    <>
      <PageHead
        title="Approvals"
        sub={
          <>
            <span className={`approvals-live ${stream}`}>{STREAM_TEXT[stream]}</span>
            {pending.data && ` · ${pending.data.length} pending${overdue ? `, ${overdue} overdue` : ''}`}
          </>
        }
      />
      <Tabs
        label="Approvals"
        value={tab}
        onChange={(t) => setParams(t === 'pending' ? {} : { tab: t })}
        tabs={[
          { id: 'pending', label: `Pending${pending.data ? ` (${pending.data.length})` : ''}` },
          { id: 'resolved', label: 'Resolved' },
          { id: 'all', label: 'All' },
        ]}
      />
      <TabPanel id={tab}>
        <QueryState loading={source.isLoading} error={source.error}>
          {rows.length === 0 ? (
            <Empty>{tab === 'pending' ? 'Nothing waits for a decision.' : 'No approval here yet.'}</Empty>
          ) : (
            <ApprovalTable rows={rows} now={now} showStatus={tab !== 'pending'} />
          )}
        </QueryState>
      </TabPanel>
    </>
  );
}

function ApprovalTable({ rows, now, showStatus }: { rows: Approval[]; now: number; showStatus: boolean }) {
  return (
    <table className="data approvals-table">
      <caption className="sr-only">Approvals</caption>
      <thead>
        <tr>
          <th scope="col">Prompt</th>
          <th scope="col">Procedure</th>
          <th scope="col">Run</th>
          <th scope="col">Node</th>
          <th scope="col">Created</th>
          <th scope="col">Expires</th>
          {showStatus && <th scope="col">Status</th>}
          <th scope="col">Decision</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((a) => (
          <tr key={a.approval_id}>
            <td>
              <Link to={`/approvals/${encodeURIComponent(a.approval_id)}`}>{a.prompt || a.node_id}</Link>{' '}
              <FlagBadges approval={a} now={now} />
            </td>
            <td>
              <ProcedureLink runId={a.run_id} />
            </td>
            <td>
              <Link to={`/runs/${encodeURIComponent(a.run_id)}`} className="mono" title={a.run_id} aria-label={`Run ${a.run_id}`}>
                {shortId(a.run_id)}
              </Link>
            </td>
            <td className="mono">{a.node_id}</td>
            <td title={dateTime(a.created_at)}>{relative(a.created_at, now)}</td>
            <td>
              <Expiry approval={a} now={now} />
            </td>
            {showStatus && (
              <td>
                <StatusBadge status={a.status} />
                {a.decided_by && <div className="muted runs-sub">by {a.decided_by}</div>}
              </td>
            )}
            <td>
              <InlineDecision approval={a} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
