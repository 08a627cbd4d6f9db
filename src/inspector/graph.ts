// A machine definition as plain JSON: its states (by path, "running.healthy")
// and transitions with short event labels. The inspector sends this once per
// machine type; charts (chart.ts) and the page are drawn from it. Paths, not
// XState ids, name states, so a snapshot's value maps onto them directly.
import type { AnyStateMachine, StateValue } from 'xstate';

export type StateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

export interface ChartState {
  /** Dotted path from the root ('' is the machine itself). */
  path: string;
  key: string;
  parent: string | null;
  type: StateType;
  /** Child path of the initial state (compound states). */
  initial?: string;
  children: string[];
  /** Actors invoked while in this state (their src names). */
  invokes: string[];
}

export interface ChartTransition {
  source: string;
  target: string;
  /** A short label: the event type, "after 5000ms", "always", "done: mount", "error: mount". */
  event: string;
  guard?: string;
}

export interface ChartGraph {
  id: string;
  states: ChartState[];
  transitions: ChartTransition[];
}

type Node = AnyStateMachine['root'];

const pathOf = (node: Node): string => node.path.join('.');

/** Short, readable labels for XState's internal event types; `srcOf` names invoked actors by id. */
export function eventLabel(eventType: string, srcOf: (id: string) => string | undefined = () => undefined): string {
  if (eventType === '') return 'always';
  // Delays are numbers (ms) or named in setup({ delays }).
  let m = /^xstate\.after\.([^.]+)\./.exec(eventType) ?? /^xstate\.after\(([^)]+)\)/.exec(eventType);
  if (m) return /^\d+$/.test(m[1]) ? `after ${m[1]}ms` : `after ${m[1]}`;
  m = /^xstate\.(done|error)\.actor\.(.+)$/.exec(eventType);
  if (m) return `${m[1]}: ${srcOf(m[2]) ?? m[2].replace(/^\d+\./, '')}`;
  m = /^xstate\.done\.state\.(.+)$/.exec(eventType);
  if (m) return 'done';
  return eventType;
}

function guardLabel(guard: unknown): string | undefined {
  if (guard === undefined) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') return guard.name || 'guard';
  const g = guard as { type?: unknown };
  return typeof g.type === 'string' ? g.type : 'guard';
}

function invokeNames(node: Node): string[] {
  return node.invoke.map((i) => (typeof i.src === 'string' ? i.src : i.id));
}

/** Invoke ids → the names of the invoked logic ("0.container.mounting" → "mount"). */
export function invokeSources(machine: AnyStateMachine): Map<string, string> {
  const srcs = new Map<string, string>();
  const collect = (node: Node): void => {
    for (const i of node.invoke) srcs.set(i.id, typeof i.src === 'string' ? i.src : i.id);
    (Object.values(node.states) as Node[]).forEach(collect);
  };
  collect(machine.root);
  return srcs;
}

/** The JSON graph of a machine: every state node and every targeted transition. */
export function machineGraph(machine: AnyStateMachine): ChartGraph {
  const states: ChartState[] = [];
  const transitions: ChartTransition[] = [];
  const srcs = invokeSources(machine);
  const visit = (node: Node): void => {
    const children = Object.values(node.states) as Node[];
    const initial = node.type === 'compound' ? node.initial?.target?.[0] : undefined;
    states.push({
      path: pathOf(node),
      key: node.path.length === 0 ? machine.id : node.key,
      parent: node.parent ? pathOf(node.parent) : null,
      type: node.type,
      ...(initial ? { initial: pathOf(initial) } : {}),
      children: children.map(pathOf),
      invokes: invokeNames(node),
    });
    const defs = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
    for (const t of defs) {
      for (const target of t.target ?? []) {
        const guard = guardLabel(t.guard);
        transitions.push({ source: pathOf(node), target: pathOf(target), event: eventLabel(t.eventType, (id) => srcs.get(id)), ...(guard ? { guard } : {}) });
      }
    }
    children.forEach(visit);
  };
  visit(machine.root);
  return { id: machine.id, states, transitions };
}

/** The dotted paths of the leaf states in a snapshot value: 'a', { b: 'c' } → ['a'], ['b.c']. */
export function leafPaths(value: StateValue, prefix = ''): string[] {
  if (typeof value === 'string') return [prefix ? `${prefix}.${value}` : value];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (v === undefined || (typeof v === 'object' && Object.keys(v).length === 0)) out.push(p);
    else out.push(...leafPaths(v as StateValue, p));
  }
  return out;
}

/** Every active state path (leaves and their ancestors), for highlighting: one implementation, shared with the page. */
export { activePaths } from './page/chart.js';
