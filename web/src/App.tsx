// Routes. Every page is loaded on demand, so the first screen ships only the shell and the page it shows.
import { createBrowserRouter, Navigate, useLocation, useRouteError, type RouteObject } from 'react-router';
import { ApiError } from './api/client';
import { ErrorBanner } from './components/Bits';
import { Layout } from './components/Layout';
import { useMe, useSignedOut } from './lib/auth';

type PageModule = { default: React.ComponentType };
const page = (load: () => Promise<PageModule>): Pick<RouteObject, 'lazy'> => ({
  lazy: async () => ({ Component: (await load()).default }),
});

/** Shows the shell to a signed-in caller (or anyone when authentication is off), the sign-in page otherwise. */
function Gate() {
  const me = useMe();
  const [signedOut] = useSignedOut();
  const location = useLocation();
  const next = encodeURIComponent(location.pathname + location.search);
  if (signedOut || (me.error instanceof ApiError && me.error.status === 401)) return <Navigate to={`/login?next=${next}`} replace />;
  if (me.isLoading) return <div className="empty" role="status">Loading…</div>;
  if (me.error) return <div className="content"><ErrorBanner error={me.error} /></div>;
  return <Layout />;
}

function RouteError() {
  const e = useRouteError();
  return (
    <div className="content">
      <ErrorBanner error={e instanceof Error ? e : new Error('This page failed to load; reload to try again.')} />
    </div>
  );
}

export const routes: RouteObject[] = [
  { path: '/login', ...page(() => import('./pages/Login')) },
  {
    element: <Gate />,
    errorElement: <RouteError />,
    children: [
      { index: true, ...page(() => import('./pages/Dashboard')) },
      { path: 'projects', ...page(() => import('./pages/Projects')) },
      { path: 'procedures', ...page(() => import('./pages/Procedures')) },
      { path: 'procedures/new', lazy: async () => ({ Component: (await import('./features/builder/pages')).NewProcedure }) },
      { path: 'procedures/validate', ...page(() => import('./pages/CheckCkp')) },
      { path: 'procedures/:procedureId/diff', ...page(() => import('./pages/VersionDiff')) },
      { path: 'procedures/:procedureId/:version', ...page(() => import('./pages/ProcedureVersion')) },
      { path: 'procedures/:procedureId/:version/edit', lazy: async () => ({ Component: (await import('./features/builder/pages')).EditProcedure }) },
      { path: 'runs', ...page(() => import('./pages/Runs')) },
      { path: 'runs/:runId', ...page(() => import('./pages/RunPage')) },
      { path: 'triggers', ...page(() => import('./pages/Triggers')) },
      { path: 'approvals', ...page(() => import('./pages/Approvals')) },
      { path: 'approvals/:approvalId', ...page(() => import('./pages/ApprovalDetail')) },
      { path: 'agents', ...page(() => import('./pages/Agents')) },
      { path: 'leases', ...page(() => import('./pages/Leases')) },
      { path: 'secrets', ...page(() => import('./pages/Secrets')) },
      { path: 'metrics', ...page(() => import('./pages/Metrics')) },
      { path: 'users', ...page(() => import('./pages/Users')) },
      { path: 'api-keys', ...page(() => import('./pages/ApiKeys')) },
      { path: 'audit', ...page(() => import('./pages/Audit')) },
      { path: '*', ...page(() => import('./pages/NotFound')) },
    ],
  },
];

export const router = createBrowserRouter(routes);
