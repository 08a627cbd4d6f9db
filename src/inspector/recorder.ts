// The one adapter between XState's inspection events and the inspector
// (XState v6 changes them: only this file should need to follow). It keeps,
// per machine actor, its current state and a bounded ring of recent events,
// and per machine type its definition (sent to pages once, not per actor).
// `inspect` runs inside XState's event processing on the main thread, so it
// only records; listeners hear about snapshot changes coalesced once per tick.
import type { AnyStateMachine, InspectionEvent, StateValue } from 'xstate';
import { eventLabel, invokeSources, leafPaths } from './graph.js';

export interface ActorInfo {
  /** XState's session id: unique per actor in this process. */
  session: string;
  /** The actor's id (a container's machine: its container name). */
  id: string;
  /** Key of the machine definition (machine id, suffixed when two machines share one). */
  machine: string;
  parent?: string;
  /** Active leaf state paths ("running", "starting.gate"). */
  state: string[];
  /** XState snapshot status: active, done, error, stopped. */
  status: string;
  updated: number;
}

export interface EventRecord {
  seq: number;
  time: number;
  session: string;
  actor: string;
  type: string;
  /** A short label for the type ("done: mount" for "xstate.done.actor.0.container.mounting"). */
  label: string;
  /** The sending actor: its id, or the name of the invoked logic. */
  source?: string;
  /** The state the machine was in after processing it. */
  state?: string[];
}

export type Change = { kind: 'actor'; actor: ActorInfo } | { kind: 'event'; event: EventRecord };

export interface RecorderOptions {
  /** Recent events kept per actor (default 200). */
  ringSize?: number;
  /** Actors kept at most; the oldest stopped ones are forgotten first (default 1000). */
  maxActors?: number;
}

interface ActorLike {
  id: string;
  sessionId: string;
  logic?: unknown;
  _parent?: { sessionId: string };
}

function isMachine(logic: unknown): logic is AnyStateMachine {
  return typeof logic === 'object' && logic !== null && 'root' in logic && 'id' in logic && typeof (logic as { transition?: unknown }).transition === 'function';
}

export class Recorder {
  readonly ringSize: number;
  readonly maxActors: number;
  private readonly machines = new Map<string, AnyStateMachine>();
  private readonly machineKeys = new WeakMap<AnyStateMachine, string>();
  private readonly invokes = new Map<string, Map<string, string>>();
  private readonly actors = new Map<string, ActorInfo>();
  private readonly rings = new Map<string, EventRecord[]>();
  private readonly pending = new WeakMap<object, EventRecord>();
  private readonly listeners = new Set<(c: Change) => void>();
  private readonly dirty = new Set<string>();
  private flushScheduled = false;
  private seq = 0;

  constructor(opts: RecorderOptions = {}) {
    this.ringSize = opts.ringSize ?? 200;
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
      case '@xstate.snapshot':
        if (this.actors.has(ref.sessionId)) this.recordSnapshot(ref, ev.event, ev.snapshot as { value?: StateValue; status?: string });
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

  /** Recent events of one actor, oldest first. */
  events(session: string): EventRecord[] {
    return [...(this.rings.get(session) ?? [])];
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
    const info: ActorInfo = {
      session: ref.sessionId,
      id: ref.id,
      machine: this.machineKey(logic),
      ...(ref._parent ? { parent: ref._parent.sessionId } : {}),
      state: [],
      status: 'active',
      updated: Date.now(),
    };
    this.actors.set(ref.sessionId, info);
    this.rings.set(ref.sessionId, []);
    this.evict();
    this.touch(ref.sessionId);
  }

  private recordEvent(ref: ActorLike, event: { type: string }, source: ActorLike | undefined): void {
    const srcs = this.invokes.get(this.actors.get(ref.sessionId)!.machine);
    const srcOf = (id: string) => srcs?.get(id);
    const rec: EventRecord = {
      seq: ++this.seq,
      time: Date.now(),
      session: ref.sessionId,
      actor: ref.id,
      type: event.type,
      label: eventLabel(event.type, srcOf),
      ...(source ? { source: srcOf(source.id) ?? source.id } : {}),
    };
    const ring = this.rings.get(ref.sessionId)!;
    ring.push(rec);
    if (ring.length > this.ringSize) ring.splice(0, ring.length - this.ringSize);
    this.pending.set(event, rec);
  }

  private recordSnapshot(ref: ActorLike, event: object, snapshot: { value?: StateValue; status?: string }): void {
    const info = this.actors.get(ref.sessionId)!;
    const state = snapshot.value === undefined ? [] : leafPaths(snapshot.value);
    info.state = state;
    info.status = snapshot.status ?? info.status;
    info.updated = Date.now();
    const rec = this.pending.get(event);
    if (rec) {
      this.pending.delete(event);
      rec.state = state;
      this.emit({ kind: 'event', event: rec });
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
    if (this.actors.size <= this.maxActors) return;
    const stopped = [...this.actors.values()].filter((a) => a.status !== 'active').sort((a, b) => a.updated - b.updated);
    const victims = stopped.length ? stopped : [...this.actors.values()].sort((a, b) => a.updated - b.updated);
    for (const v of victims.slice(0, this.actors.size - this.maxActors)) {
      this.actors.delete(v.session);
      this.rings.delete(v.session);
    }
  }
}
