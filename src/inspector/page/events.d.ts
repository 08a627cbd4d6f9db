// Types of events.js (plain JavaScript so the page loads it as it is).
import type { ChartGraph } from '../graph.js';
import type { ActorInfo, EventDetail, EventRecord } from '../recorder.js';

export declare function insertBySeq(list: { seq: number }[], rec: { seq: number }): number;
export declare function sortActors<T extends Pick<ActorInfo, 'status' | 'name' | 'session'> & { idle?: boolean }>(actors: Iterable<T>): T[];
export declare function fmtTime(ms: number): string;
export interface Recording {
  created: number;
  machines: Map<string, ChartGraph>;
  actors: ActorInfo[];
  histories: Map<string, EventRecord[]>;
  details: Map<string, EventDetail>;
}
export declare function readRecording(records: unknown[]): Recording;
export declare function parseJsonLines(text: string): unknown[];
