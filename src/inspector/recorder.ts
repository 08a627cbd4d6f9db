// The one adapter between XState's inspection events and the inspector
// (XState v6 changes them: only this file should need to follow). It keeps,
// per machine actor, its current state, its running timers and a bounded
// history of events; per machine type its definition (sent to pages once,
// not per actor).
// `inspect` runs inside XState's event processing on the main thread, so it
// only records references: payloads and contexts are redacted and copied
// when a page or an export asks for them (redact.ts), not per event.
// Listeners hear about snapshot changes coalesced once per tick.
import type { AnyStateMachine, InspectionEvent, StateValue } from 'xstate';
import { activePaths, eventLabel, invokeSources, leafPaths } from './graph.js';
import { redact } from './redact.js';

export interface Timer {
  /** "after grace". */
  label: string;
  /** The delayed event's type. */
  event: string;
  /** The state whose delayed transition it is. */
  path: string;
  delayMs: number;
  /** Epoch ms when it fires. */
  due: number;
}

export interface ActorInfo {
  /** XState's session id: unique per actor in this process. */
  session: string;
  /** The actor's id (a container's machine: its container name). */
  id: string;
  /** What the page calls it: its id, or its machine's id for a root with a generated id ("x:0"). */
  name: string;
  /** Key of the machine definition (machine id, suffixed when two machines share one). */
  machine: string;
  parent?: string;
  /** Active leaf state paths ("running", "starting.gate"). */
  state: string[];
  /** XState snapshot status: active, done, error, stopped. */
  status: string;
  /** Still in the state it started in (a container never mounted): listed after the busy ones. */
  idle: boolean;
  updated: number;
  /** Delayed transitions waiting in the current state. */
  timers: Timer[];
}

export interface Taken {
  source: string;
  target: string;
}

export interface EventRecord {
  seq: number;
  time: number;
  session: string;
  actor: string;
  /** The actor's display name (ActorInfo.name); its history is kept under it. */
  name: string;
  type: string;
  /** A short label ("done: mount" for "xstate.done.actor.0.container.mounting", "request: start"). */
  label: string;
  /** The sending actor: its id, or the name of the invoked logic. */
  source?: string;
  /** The state the machine was in after processing it. */
  state?: string[];
  /** The transitions it took (state paths). */
  taken?: Taken[];
}

/** An event's payload and the machine's context after it, redacted. */
export interface EventDetail {
  event: unknown;
  context: unknown;
}

export type Change = { kind: 'actor'; actor: ActorInfo } | { kind: 'event'; event: EventRecord };

export interface RecorderOptions {
  /** Events kept per machine (by name, across its restarts; default 1000). */
  history?: number;
  /** Actors kept at most; the oldest stopped ones are forgotten first (default 1000). */
  maxActors?: number;
}

interface ActorLike {
  id: string;
  sessionId: string;
  logic?: unknown;
  _parent?: { sessionId: string };
}

interface Entry {
  rec: EventRecord;
  event: object;
  context?: unknown;
  /** Transitions taken while processing it (until its snapshot settles). */
  taken?: Taken[];
}

interface TransitionLike {
  source: { path: string[] };
  target?: readonly { path: string[] }[];
}

function isMachine(logic: unknown): logic is AnyStateMachine {
  return typeof logic === 'object' && logic !== null && 'root' in logic && 'id' in logic && typeof (logic as { transition?: unknown }).transition === 'function';
}

/**
 * The event as kept in the history: a request's `reply` callback would hold
 * whatever its closure holds (a console connection, long closed) for as long
 * as the event stays in the history, so callbacks are kept by name only.
 */
function withoutCallbacks(event: object): object {
  let copy: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(event)) {
    if (typeof v !== 'function') continue;
    copy ??= { ...event };
    copy[k] = `‹function ${(v as { name?: string }).name || 'anonymous'}›`;
  }
  return copy ?? event;
}

/** "request: start hello:0.0.1" for the supervisor's requests. */
function requestLabel(event: { type: string; request?: unknown }): string | undefined {
  const r = event.request as { type?: unknown; container?: unknown; containers?: unknown } | undefined;
  if (event.type !== 'request' || typeof r?.type !== 'string') return undefined;
  const target = typeof r.container === 'string' ? ` ${r.container}` : Array.isArray(r.containers) ? ` ${r.containers.join(', ')}` : '';
  return `request: ${r.type}${target}`;
}

export class Recorder {
  readonly history: number;
  readonly maxActors: number;
  private readonly machines = new Map<string, AnyStateMachine>();
  private readonly machineKeys = new WeakMap<AnyStateMachine, string>();
  private readonly invokes = new Map<string, Map<string, string>>();
  private readonly actors = new Map<string, ActorInfo>();
  /** History by actor name: a restarted machine (a new session, the same name) continues it. */
  private readonly histories = new Map<string, Entry[]>();
  private readonly pending = new WeakMap<object, Entry>();
  private readonly firstStates = new Map<string, string>();
  private readonly listeners = new Set<(c: Change) => void>();
  private readonly dirty = new Set<string>();
  private flushScheduled = false;
  private seq = 0;

  constructor(opts: RecorderOptions = {}) {
    this.history = opts.history ?? 1000;
    this.maxActors = opts.maxActors ?? 1000;
  }

  /** Pass as `inspect` to createActor(machine, { inspect }). */
  readonly inspect = (ev: InspectionEvent): void => {
    const ref = ev.actorRef as unknown as ActorLike;
    switch (ev.type) {
      case '@xstate.actor':
        if (isMachine(ref.logic)) this.register(ref, ref.logic);
        break;
      case '@xstate.event':
        if (this.actors.has(ref.sessionId)) this.recordEvent(ref, ev.event, ev.sourceRef as unknown as ActorLike | undefined);
        break;
      case '@xstate.microstep':
        this.recordSteps(ev.event, ev._transitions as unknown as TransitionLike[]);
        break;
      case '@xstate.action':
        // Only delayed raises matter (timers); every other action passes by.
        if (ev.action.type === 'xstate.raise' && this.actors.has(ref.sessionId)) this.recordTimer(ref, ev.action.params);
        break;
      case '@xstate.snapshot':
        if (this.actors.has(ref.sessionId)) this.recordSnapshot(ref, ev.event, ev.snapshot as { value?: StateValue; status?: string; context?: unknown });
        break;
    }
  };

  subscribe(listener: (c: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  actorList(): ActorInfo[] {
    return [...this.actors.values()];
  }

  actor(session: string): ActorInfo | undefined {
    return this.actors.get(session);
  }

  /** The recorded history of an actor's name (its earlier sessions too), oldest first. */
  events(session: string): EventRecord[] {
    const a = this.actors.get(session);
    return a ? this.historyOf(a.name) : [];
  }

  historyOf(name: string): EventRecord[] {
    return (this.histories.get(name) ?? []).map((e) => e.rec);
  }

  historyNames(): string[] {
    return [...this.histories.keys()];
  }

  /** One event's payload and the context after it, redacted; undefined once it left the history. */
  detail(name: string, seq: number): EventDetail | undefined {
    const h = this.histories.get(name) ?? [];
    const e = h.find((x) => x.rec.seq === seq);
    return e && { event: redact(e.event), context: redact(e.context) };
  }

  /** A name's history with every payload and context, redacted one at a time (recordings). */
  *recording(name: string): Generator<{ event: EventRecord; detail: EventDetail }> {
    for (const e of [...(this.histories.get(name) ?? [])]) yield { event: e.rec, detail: { event: redact(e.event), context: redact(e.context) } };
  }

  machine(key: string): AnyStateMachine | undefined {
    return this.machines.get(key);
  }

  machineKeyList(): string[] {
    return [...this.machines.keys()];
  }

  private machineKey(m: AnyStateMachine): string {
    let key = this.machineKeys.get(m);
    if (key) return key;
    key = m.id;
    for (let i = 2; this.machines.has(key) && this.machines.get(key) !== m; i++) key = `${m.id}#${i}`;
    this.machines.set(key, m);
    this.machineKeys.set(m, key);
    this.invokes.set(key, invokeSources(m));
    return key;
  }

  private register(ref: ActorLike, logic: AnyStateMachine): void {
    const machine = this.machineKey(logic);
    // XState names a root actor without an id "x:<n>": the machine's id says more.
    const name = !ref._parent && /^x:\d+$/.test(ref.id) ? logic.id : ref.id;
    const info: ActorInfo = {
      session: ref.sessionId,
      id: ref.id,
      name,
      machine,
      ...(ref._parent ? { parent: ref._parent.sessionId } : {}),
      state: [],
      status: 'active',
      idle: true,
      updated: Date.now(),
      timers: [],
    };
    this.actors.set(ref.sessionId, info);
    // A new session under a known name keeps its history: it is the same machine, restarted.
    const kept = this.histories.get(name) ?? [];
    this.histories.delete(name);
    this.histories.set(name, kept);
    this.evict();
    this.touch(ref.sessionId);
  }

  private recordEvent(ref: ActorLike, event: { type: string }, source: ActorLike | undefined): void {
    const info = this.actors.get(ref.sessionId)!;
    const srcs = this.invokes.get(info.machine);
    const srcOf = (id: string) => srcs?.get(id);
    const rec: EventRecord = {
      seq: ++this.seq,
      time: Date.now(),
      session: ref.sessionId,
      actor: ref.id,
      name: info.name,
      type: event.type,
      label: requestLabel(event) ?? eventLabel(event.type, srcOf),
      ...(source ? { source: srcOf(source.id) ?? source.id } : {}),
    };
    const entry: Entry = { rec, event: withoutCallbacks(event) };
    let h = this.histories.get(info.name);
    if (!h) this.histories.set(info.name, (h = []));
    h.push(entry);
    if (h.length > this.history) h.splice(0, h.length - this.history);
    this.pending.set(event, entry);
    if (info.timers.length) info.timers = info.timers.filter((t) => t.event !== event.type);
  }

  /** Microsteps carry the event being processed: its entry collects the transitions. */
  private recordSteps(event: object, transitions: TransitionLike[]): void {
    const entry = this.pending.get(event);
    if (!entry) return;
    for (const t of transitions) {
      for (const target of t.target ?? []) (entry.taken ??= []).push({ source: t.source.path.join('.'), target: target.path.join('.') });
    }
  }

  /** Delayed transitions are raised events with a delay; leaving their state cancels them. */
  private recordTimer(ref: ActorLike, params: unknown): void {
    const info = this.actors.get(ref.sessionId)!;
    const p = params as { event?: { type?: string }; delay?: unknown } | undefined;
    const type = p?.event?.type;
    if (typeof type !== 'string' || typeof p?.delay !== 'number' || !type.startsWith('xstate.after.')) return;
    // "xstate.after.<delay>.<machine id>.<state path>"
    const m = this.machines.get(info.machine);
    const stateId = /^xstate\.after\.[^.]+\.(.+)$/.exec(type)?.[1] ?? '';
    const path = m && stateId.startsWith(`${m.id}.`) ? stateId.slice(m.id.length + 1) : stateId;
    info.timers = [...info.timers.filter((t) => t.path !== path), { label: eventLabel(type), event: type, path, delayMs: p.delay, due: Date.now() + p.delay }];
    this.touch(ref.sessionId);
  }

  private recordSnapshot(ref: ActorLike, event: object, snapshot: { value?: StateValue; status?: string; context?: unknown }): void {
    const info = this.actors.get(ref.sessionId)!;
    const state = snapshot.value === undefined ? [] : leafPaths(snapshot.value);
    const first = this.firstStates.get(ref.sessionId);
    if (!first) this.firstStates.set(ref.sessionId, state.join());
    info.idle = !first || first === state.join();
    info.state = state;
    info.status = snapshot.status ?? info.status;
    info.updated = Date.now();
    if (info.timers.length) {
      const on = new Set(activePaths(state));
      info.timers = info.status === 'active' ? info.timers.filter((t) => on.has(t.path)) : [];
    }
    const entry = this.pending.get(event);
    if (entry) {
      this.pending.delete(event);
      entry.rec.state = state;
      entry.context = snapshot.context;
      if (entry.taken) entry.rec.taken = entry.taken;
      entry.taken = undefined;
      this.emit({ kind: 'event', event: entry.rec });
    }
    this.touch(ref.sessionId);
  }

  /** Snapshot changes are coalesced: listeners hear each changed actor once per tick. */
  private touch(session: string): void {
    this.dirty.add(session);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const sessions = [...this.dirty];
      this.dirty.clear();
      for (const s of sessions) {
        const actor = this.actors.get(s);
        if (actor) this.emit({ kind: 'actor', actor: { ...actor } });
      }
    });
  }

  private emit(c: Change): void {
    for (const l of this.listeners) l(c);
  }

  private evict(): void {
    if (this.actors.size > this.maxActors) {
      const stopped = [...this.actors.values()].filter((a) => a.status !== 'active').sort((a, b) => a.updated - b.updated);
      const victims = stopped.length ? stopped : [...this.actors.values()].sort((a, b) => a.updated - b.updated);
      for (const v of victims.slice(0, this.actors.size - this.maxActors)) {
        this.actors.delete(v.session);
        this.firstStates.delete(v.session);
      }
    }
    // Histories outlive their sessions (restarts), but not without bound: the
    // least recently registered names without a live actor go first.
    if (this.histories.size <= this.maxActors) return;
    const live = new Set([...this.actors.values()].map((a) => a.name));
    for (const name of this.histories.keys()) {
      if (this.histories.size <= this.maxActors) break;
      if (!live.has(name)) this.histories.delete(name);
    }
  }
}
