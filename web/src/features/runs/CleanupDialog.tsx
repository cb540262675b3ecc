// History cleanup: runs created before a date (optionally of one status) are counted first ("Preview", a dry run
// on the server), then deleted after a confirm that repeats the count.
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ErrorBanner } from '../../components/Bits';
import { Dialog, useConfirm } from '../../components/Dialog';
import { useToast } from '../../components/Toasts';
import { count } from '../../lib/format';
import { cleanupHistory, localToIso, RUN_STATUSES, type CleanupResult } from './api';
import { Options, statusLabel } from '../../components/Options';

type Stage =
  | { kind: 'idle' }
  | { kind: 'previewed'; result: CleanupResult }
  | { kind: 'deleted'; result: CleanupResult; unasked?: boolean };

export function CleanupDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [before, setBefore] = useState('');
  const [status, setStatus] = useState('');
  const [stage, setStage] = useState<Stage>({ kind: 'idle' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const confirm = useConfirm();
  const toast = useToast();
  const qc = useQueryClient();

  const reset = () => {
    setStage({ kind: 'idle' });
    setError(null);
  };
  const close = () => {
    reset();
    onClose();
  };

  const preview = async () => {
    setBusy(true);
    setError(null);
    try {
      const result = await cleanupHistory(localToIso(before), status, true);
      if (result.dry_run === true) {
        setStage({ kind: 'previewed', result });
      } else {
        // A server without dry runs deleted instead of counting: say so plainly.
        setStage({ kind: 'deleted', result, unasked: true });
        await qc.invalidateQueries({ queryKey: ['runs'] });
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const remove = async (n: number) => {
    const ok = await confirm({
      title: 'Delete run history',
      message: `Delete ${count(n)} run${n === 1 ? '' : 's'} and their events, checkpoints and artifacts? This cannot be undone.`,
      confirm: 'Delete runs',
      danger: true,
    });
    if (!ok) return;
    setBusy(true);
    setError(null);
    try {
      const result = await cleanupHistory(localToIso(before), status, false);
      setStage({ kind: 'deleted', result });
      toast.show(`Deleted ${count(result.deleted_count)} runs`, 'success');
      await qc.invalidateQueries({ queryKey: ['runs'] });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog
      open={open}
      title="Clean up run history"
      onClose={close}
      actions={
        <>
          <button onClick={close}>Close</button>
          <button onClick={() => void preview()} disabled={!before || busy}>
            Preview
          </button>
          {stage.kind === 'previewed' && (
            <button
              className="danger solid"
              onClick={() => void remove(stage.result.deleted_count)}
              disabled={busy || stage.result.deleted_count === 0}
            >
              Delete {count(stage.result.deleted_count)} runs
            </button>
          )}
        </>
      }
    >
      <form
        className="form-grid"
        onSubmit={(e) => {
          e.preventDefault();
          void preview();
        }}
      >
        <label>
          Created before
          <input
            type="datetime-local"
            required
            value={before}
            onChange={(e) => {
              setBefore(e.target.value);
              reset();
            }}
          />
        </label>
        <label>
          Status
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value);
              reset();
            }}
          >
            <Options none="Any status" items={RUN_STATUSES} label={statusLabel} />
          </select>
        </label>
      </form>
      <div role="status" className="runs-cleanup-result">
        {stage.kind === 'previewed' && (
          <p>
            <strong>{count(stage.result.deleted_count)}</strong> run{stage.result.deleted_count === 1 ? '' : 's'} would
            be deleted.
          </p>
        )}
        {stage.kind === 'deleted' && (
          <p>
            Deleted <strong>{count(stage.result.deleted_count)}</strong> run{stage.result.deleted_count === 1 ? '' : 's'}.
            {stage.unasked && ' This server cannot preview a cleanup: it deleted them at once.'}
          </p>
        )}
      </div>
      {error !== null && <ErrorBanner error={error} />}
    </Dialog>
  );
}
