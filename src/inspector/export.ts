// Charts for docs and `nstar chart <container|machine>`: the runtime's own
// machines by name, or any machine, as SVG or Mermaid text. No daemon needed
// for the definitions; a running daemon's inspector serves the same SVG with
// the current state highlighted at /api/actors/<session>/chart.svg.
import type { AnyStateMachine } from 'xstate';
import { chartMermaid, chartSvg, layoutChart } from './chart.js';
import { activePaths, machineGraph } from './graph.js';

export type ChartFormat = 'svg' | 'mermaid';

/** The machine definitions the runtime is made of, by name. */
export async function runtimeMachine(name: string): Promise<AnyStateMachine> {
  if (name === 'container') return (await import('../machines/container.js')).containerMachine as unknown as AnyStateMachine;
  if (name === 'supervisor') return (await import('../machines/supervisor.js')).supervisorMachine as unknown as AnyStateMachine;
  throw new Error(`chart: no machine named "${name}" (known: container, supervisor)`);
}

/** One machine as SVG (active leaf paths highlighted; laid out in a worker thread) or Mermaid text. */
export async function exportChart(machine: AnyStateMachine, format: ChartFormat, opts: { active?: string[] } = {}): Promise<string> {
  const graph = machineGraph(machine);
  if (format === 'mermaid') return chartMermaid(graph);
  return chartSvg(graph, await layoutChart(graph), activePaths(opts.active ?? []));
}
