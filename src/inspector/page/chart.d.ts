// Types of chart.js (plain JavaScript so the page loads it as it is).
import type { ElkNode } from 'elkjs/lib/elk-api.js';
import type { ChartGraph } from '../graph.js';

export declare const STATE_FONT: number;
export declare const LABEL_FONT: number;
export declare const SVG_STYLE: string;
export type Measure = (text: string, size: number, bold?: boolean) => number;
export declare const estimateWidth: Measure;
export interface ChartEdge {
  id: string;
  source: string;
  target: string;
  events: string[];
  lines: string[];
}
export interface ChartNote {
  state: string;
  target: string;
  events: string[];
  lines: string[];
}
export declare function activePaths(leaves: string[]): string[];
export declare function chartEdges(graph: ChartGraph): { edges: ChartEdge[]; notes: ChartNote[] };
export declare function elkGraph(graph: ChartGraph, measure?: Measure): ElkNode;
export declare function chartSvg(graph: ChartGraph, laid: ElkNode, opts?: { active?: Iterable<string> }): string;
export declare function within(path: string, p: string): boolean;
