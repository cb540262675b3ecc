// Who is signed in (`GET /api/auth/me`), shared by the shell, the sign-in page and role-aware controls.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { onUnauthorized, raw } from '../api/client';

export interface Me {
  identity: string;
  roles: string[];
  user_id?: string | null;
  email?: string | null;
  full_name?: string | null;
  role?: string | null;
  projects: Record<string, string>;
  credential?: string | null;
  auth_enabled: boolean;
}

const RANK: Record<string, number> = { viewer: 1, approver: 2, operator: 3, manager: 4, admin: 5 };

export function useMe() {
  return useQuery({ queryKey: ['me'], queryFn: () => raw<Me>('/api/auth/me'), retry: false, staleTime: 60_000 });
}

/** Whether the caller has at least `role` globally (or in any project when `anyProject`). */
export function hasRole(me: Me | undefined, role: string, anyProject = false): boolean {
  if (!me) return false;
  const need = RANK[role] ?? 99;
  if ((RANK[me.role ?? ''] ?? 0) >= need) return true;
  if (!me.auth_enabled && !me.credential) return true;
  return anyProject && Object.values(me.projects).some((r) => (RANK[r] ?? 0) >= need);
}

/** True once any request answered 401 (the session ended): the app shows the sign-in page. */
export function useSignedOut(): [boolean, () => void] {
  const [out, setOut] = useState(false);
  const qc = useQueryClient();
  useEffect(
    () =>
      onUnauthorized(() => {
        setOut(true);
        qc.removeQueries({ queryKey: ['me'] });
      }),
    [qc],
  );
  return [out, () => setOut(false)];
}
