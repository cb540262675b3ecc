// A plain table of text cells under column headings: an artifact's CSV preview, the diagnostics' records.

export function GridTable({
  head,
  rows,
  caption,
  cellClass,
}: {
  head: readonly string[];
  rows: readonly (readonly string[])[];
  /** Read by screen readers only. */
  caption?: string;
  cellClass?: string;
}) {
  return (
    <table className="data">
      {caption && <caption className="sr-only">{caption}</caption>}
      <thead>
        <tr>
          {head.map((h, i) => (
            <th key={i} scope="col">
              {h}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i}>
            {r.map((c, j) => (
              <td key={j} className={cellClass}>
                {c}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
