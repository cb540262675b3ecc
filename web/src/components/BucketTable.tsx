// The run statistics' buckets as a table: the text alternative of the dashboard's and the metrics page's charts.
import type { RunStats } from '../lib/runStats';

const COLUMNS = ['Created', 'Completed', 'Failed', 'Canceled'] as const;

export function BucketTable({
  stats,
  label,
  when,
  numClass,
}: {
  stats: RunStats;
  label: string;
  /** How a bucket's start is written. */
  when: (start: string) => string;
  /** The page's class for right-aligned numbers. */
  numClass: string;
}) {
  return (
    <table className="data" aria-label={label}>
      <thead>
        <tr>
          <th scope="col">From</th>
          {COLUMNS.map((c) => (
            <th key={c} scope="col" className={numClass}>
              {c}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {stats.buckets.map((b) => (
          <tr key={b.start}>
            <td>{when(b.start)}</td>
            {[b.created, b.completed, b.failed, b.canceled].map((n, i) => (
              <td key={COLUMNS[i]} className={numClass}>
                {n}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
