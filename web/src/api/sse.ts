// Server-sent events with resumption. EventSource sends `Last-Event-ID` by itself when it reconnects after a
// dropped connection, and ckp resumes after it. A run's stream ends after the run's terminal event: the handler
// returns true on that event and the stream is closed instead of reconnected. To start a stream after events
// already loaded, pass `last_event_id=<id>` in the URL (ckp reads it for clients that cannot set headers).
import { useEffect, useRef, useState } from 'react';

export type StreamState = 'connecting' | 'open' | 'closed' | 'error';

export interface StreamMessage {
  id: string | null;
  event: string;
  data: unknown;
}

/**
 * Opens `url` as an EventSource while `enabled`, calling `onMessage` for every message of the named `events`
 * (and unnamed ones); the stream closes for good when the handler returns true. Returns the connection state.
 * The handler may change between renders.
 */
export function useEventStream(
  url: string | null,
  events: string[],
  onMessage: (m: StreamMessage) => boolean | void,
): StreamState {
  const [state, setState] = useState<StreamState>('connecting');
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const names = events.join(',');
  useEffect(() => {
    if (!url) {
      setState('closed');
      return;
    }
    setState('connecting');
    const es = new EventSource(url, { withCredentials: true });
    const deliver = (e: MessageEvent) => {
      let data: unknown = e.data;
      try {
        data = JSON.parse(e.data);
      } catch {
        /* a plain text message */
      }
      if (handler.current({ id: e.lastEventId || null, event: e.type, data }) === true) {
        es.close();
        setState('closed');
      }
    };
    es.onopen = () => setState('open');
    es.onerror = () => setState(es.readyState === EventSource.CLOSED ? 'closed' : 'error');
    es.onmessage = deliver;
    const list = names ? names.split(',') : [];
    for (const n of list) es.addEventListener(n, deliver as EventListener);
    return () => {
      for (const n of list) es.removeEventListener(n, deliver as EventListener);
      es.close();
    };
  }, [url, names]);
  return state;
}
