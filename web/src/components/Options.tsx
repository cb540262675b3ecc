// The options of a <select>: first the "none" choice (empty value), then each value with its label. The one place
// the console lists statuses, procedures and projects as choices.

/** A choice whose label is not its value (a project's name for its id). */
export interface Choice {
  value: string;
  label: string;
}

export function Options({
  none,
  items,
  label = (v) => v,
}: {
  none: string;
  items: readonly (string | Choice)[];
  /** The label of a plain string item. */
  label?: (value: string) => string;
}) {
  return (
    <>
      <option value="">{none}</option>
      {items.map((item) => {
        const [value, text] = typeof item === 'string' ? [item, label(item)] : [item.value, item.label];
        return (
          <option key={value} value={value}>
            {text}
          </option>
        );
      })}
    </>
  );
}

/** A status as people read it: `waiting_approval` → "waiting approval". */
export const statusLabel = (s: string) => s.replace(/_/g, ' ');
