// Starting points of a new procedure: an empty canvas, or one of the three hybrid examples of the repository's
// `examples/` (imported at build time; build.rs rebuilds the console when they change). Loaded on demand.
import { emptyProcedure, type JsonObject } from './model';

export interface Template {
  id: string;
  name: string;
  description: string;
  load: () => Promise<JsonObject>;
}

const json = (m: { default: unknown }) => structuredClone(m.default) as JsonObject;

export const TEMPLATES: Template[] = [
  { id: 'empty', name: 'Empty procedure', description: 'A blank canvas: add nodes from the palette.', load: async () => emptyProcedure() },
  {
    id: 'invoice_processing',
    name: 'Invoice processing',
    description: 'Ingest, LLM extraction, checks, risk score, manager approval, ERP update.',
    load: () => import('../../../../examples/invoice_processing.ckp.json').then(json),
  },
  {
    id: 'customer_support',
    name: 'Customer support',
    description: 'Fetch a ticket, classify it with an LLM, route it to people or auto-reply, update the ticket.',
    load: () => import('../../../../examples/customer_support.ckp.json').then(json),
  },
  {
    id: 'contract_review',
    name: 'Contract review',
    description: 'Extract key terms, review in parallel, three approvals, then e-sign or revise.',
    load: () => import('../../../../examples/contract_review.ckp.json').then(json),
  },
];
