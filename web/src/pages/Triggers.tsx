// The triggers page: every registration (disabled ones too) with what fires it, its state, its next ticks and its
// last fire, and the controls an operator needs (enable/disable, pause, fire now, sync from the documents).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'react-router';
import { raw, type Schemas } from '../api/client';
import { Empty, PageHead, QueryState } from '../components/Bits';
import { useToast } from '../components/Toasts';
import { versionPath } from './catalog/shared';
import { LastFire, NextFires, TRIGGERS_KEY, TriggerActions, TriggerSource, TriggerState, type Trigger } from './triggers/shared';

export default function Triggers() {
  const qc = useQueryClient();
  const toast = useToast();
  const q = useQuery({
    queryKey: TRIGGERS_KEY,
    queryFn: () => raw<Trigger[]>('/api/triggers'),
    refetchInterval: 30_000,
  });
  const sync = useMutation({
    mutationFn: () => raw<Schemas['Synced']>('/api/triggers/sync', { method: 'POST' }),
    onSuccess: (r) => {
      toast.show(`Synced: ${r.synced} registrations`, 'success');
      void qc.invalidateQueries({ queryKey: TRIGGERS_KEY });
    },
    onError: (e) => toast.error(e),
  });
  return (
    <div className="content">
      <PageHead title="Triggers" sub="Schedules, webhooks, file drops and broker messages that start runs, one registration per procedure version.">
        <button onClick={() => sync.mutate()} disabled={sync.isPending} title="Register every version's trigger block again">
          Sync
        </button>
      </PageHead>
      <QueryState loading={q.isLoading} error={q.error}>
        {q.data?.length === 0 ? (
          <Empty>No procedure version declares a trigger.</Empty>
        ) : (
          <div className="triggers-table-wrap">
            <table className="data">
              <caption className="sr-only">Trigger registrations</caption>
              <thead>
                <tr>
                  <th scope="col">Procedure</th>
                  <th scope="col">Type</th>
                  <th scope="col">Schedule or URL</th>
                  <th scope="col">State</th>
                  <th scope="col">Overlap</th>
                  <th scope="col">Max concurrent</th>
                  <th scope="col">Next fires (local time)</th>
                  <th scope="col">Last fire</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {q.data?.map((t) => (
                  <tr key={t.id}>
                    <td>
                      <Link to={`/procedures/${versionPath(t.procedure_id, t.version)}?tab=triggers`}>
                        {t.procedure_id}@{t.version}
                      </Link>
                    </td>
                    <td>{t.trigger_type}</td>
                    <td>
                      <TriggerSource t={t} />
                    </td>
                    <td>
                      <TriggerState t={t} />
                    </td>
                    <td>{t.overlap}</td>
                    <td>{t.max_concurrent_runs ?? 'no limit'}</td>
                    <td>
                      <NextFires t={t} label={`Next fires of ${t.procedure_id}@${t.version}`} />
                    </td>
                    <td>
                      <LastFire t={t} />
                    </td>
                    <td>
                      <TriggerActions t={t} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </QueryState>
    </div>
  );
}
