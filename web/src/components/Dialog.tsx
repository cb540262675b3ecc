// Modal dialogs on the native <dialog> element (focus trap, Escape, backdrop) and a promise-based confirm.
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from 'react';

export function Dialog({
  open,
  title,
  onClose,
  children,
  actions,
}: {
  open: boolean;
  title: string;
  onClose: () => void;
  children: ReactNode;
  actions?: ReactNode;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  const titleId = `dlg-${title.replace(/\W+/g, '-')}`;
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      {open && (
        <>
          <div className="dialog-body">
            <h2 id={titleId}>{title}</h2>
            {children}
          </div>
          {actions && <div className="dialog-actions">{actions}</div>}
        </>
      )}
    </dialog>
  );
}

interface ConfirmOptions {
  title: string;
  message: ReactNode;
  confirm?: string;
  danger?: boolean;
}
type Confirm = (o: ConfirmOptions) => Promise<boolean>;
const Ctx = createContext<Confirm | null>(null);

export function ConfirmProvider({ children }: { children: ReactNode }) {
  const [pending, setPending] = useState<(ConfirmOptions & { resolve: (v: boolean) => void }) | null>(null);
  const confirm = useCallback<Confirm>((o) => new Promise((resolve) => setPending({ ...o, resolve })), []);
  const finish = (v: boolean) => {
    pending?.resolve(v);
    setPending(null);
  };
  return (
    <Ctx.Provider value={confirm}>
      {children}
      <Dialog
        open={pending !== null}
        title={pending?.title ?? 'Confirm'}
        onClose={() => finish(false)}
        actions={
          <>
            <button onClick={() => finish(false)}>Cancel</button>
            <button className={pending?.danger ? 'danger solid' : 'primary'} onClick={() => finish(true)} autoFocus>
              {pending?.confirm ?? 'Confirm'}
            </button>
          </>
        }
      >
        <div>{pending?.message}</div>
      </Dialog>
    </Ctx.Provider>
  );
}

export function useConfirm(): Confirm {
  const c = useContext(Ctx);
  if (!c) throw new Error('useConfirm outside ConfirmProvider');
  return c;
}
