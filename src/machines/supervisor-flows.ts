// The supervisor's flows: small promise actors that wait for container
// machines (asking them with one-shot replies) and never do I/O themselves.
// Each serves one request, the boot or the shutdown.
import { fromPromise, type AnyActorRef } from 'xstate';

import { Logger } from '../log.js';
import { errors } from '../model/errors.js';
import type { ContainerRequest } from './container-events.js';
import { ask, toRuntimeError, type Reply } from './reply.js';
import type { ContainerResult, Request } from './requests.js';
import type { Entry, StartFlowInput, Target } from './supervisor-state.js';

const log = new Logger('supervisor');

/** Asks every target the same request, in parallel; one result each, in order. */
async function results(targets: Target[], make: (reply: Reply) => ContainerRequest): Promise<ContainerResult[]> {
  return Promise.all(
    targets.map(async ({ container, ref, error }): Promise<ContainerResult> => {
      if (error || !ref) return { container, ok: false, error: error ?? errors.invalidContainer(container) };
      try {
        await ask(ref, make);
        return { container, ok: true };
      } catch (e) {
        return { container, ok: false, error: toRuntimeError(e) };
      }
    }),
  );
}

export const flows = {
    mountFlow: fromPromise<ContainerResult[], Target[]>(({ input }) =>
      results(input, (reply) => ({ type: 'mount', reply })),
    ),
    umountFlow: fromPromise<ContainerResult[], Target[]>(({ input }) =>
      results(input, (reply) => ({ type: 'umount', reply })),
    ),
    startFlow: fromPromise<void, StartFlowInput>(async ({ input }) => {
      await Promise.all(
        input.resources.map(({ id, ref }) =>
          ask(ref, (reply) => ({ type: 'mount', ensure: true, reply })).catch((e: unknown) => {
            throw errors.startFailed(input.id, `resource ${id} failed to mount: ${toRuntimeError(e).message}`, e);
          }),
        ),
      );
      const resolveMs = input.now() - (input.order.requestedAt ?? input.now());
      await ask(input.ref, (reply) => ({ type: 'start', ...input.order, resolveMs, reply }));
    }),
    uninstallFlow: fromPromise<void, { ref: AnyActorRef }>(async ({ input }) => {
      // Not started (the supervisor checked); halt waits for a mount in flight.
      await ask(input.ref, (reply) => ({ type: 'halt', reply }));
      const s = input.ref.getSnapshot() as { hasTag(t: string): boolean };
      if (s.hasTag('mounted')) await ask(input.ref, (reply) => ({ type: 'umount', reply }));
    }),
    boot: fromPromise<void, { self: AnyActorRef; mountOnStart: { id: string; ref: AnyActorRef }[]; autostart: Entry[] }>(
      async ({ input }) => {
        await Promise.all(
          input.mountOnStart.map(({ id, ref }) =>
            ask(ref, (reply) => ({ type: 'mount', ensure: true, reply })).catch((e: unknown) =>
              log.warn(`Failed to mount ${id}: ${toRuntimeError(e).message}`),
            ),
          ),
        );
        for (const e of input.autostart) {
          const request: Request = { type: 'start', container: e.id, arguments: [], environment: {} };
          try {
            await ask(input.self, (reply) => ({ type: 'request', request, reply }));
          } catch (err) {
            if (e.manifest.autostart === 'critical') throw err;
            log.warn(`Failed to autostart relaxed container ${e.id}: ${toRuntimeError(err).message}`);
          }
        }
      },
    ),
    shutdown: fromPromise<void, { entries: { id: string; ref: AnyActorRef; resource: boolean }[]; graceMs: number }>(async ({ input }) => {
      const settle = (what: string, id: string) => (e: unknown) => log.warn(`${what} ${id}: ${toRuntimeError(e).message}`);
      // A container actor that crashed answers nothing: asking it would hang the shutdown.
      for (const e of input.entries) {
        const s = e.ref.getSnapshot() as { status: string; error?: unknown };
        if (s.status !== 'active') log.error(`Container ${e.id} is ${s.status}: ${toRuntimeError(s.error).message}`);
      }
      input = { ...input, entries: input.entries.filter((e) => (e.ref.getSnapshot() as { status: string }).status === 'active') };
      const { graceMs } = input;
      await Promise.all(
        input.entries.map(async ({ id, ref }) => {
          // With a grace: SIGTERM, SIGKILL only when still running after it (the
          // stop races the exit). A container that is not started answers
          // stop_container_not_started; the halt below settles it either way.
          if (graceMs > 0) await ask(ref, (reply) => ({ type: 'stop', graceMs, reply })).catch(() => undefined);
          await ask(ref, (reply) => ({ type: 'halt', reply })).catch(settle('Stopping', id));
        }),
      );
      // Users before the resources they bind.
      for (const resources of [false, true]) {
        const group = input.entries.filter((e) => e.resource === resources && (e.ref.getSnapshot() as { matches(s: string): boolean }).matches('mounted'));
        await Promise.all(group.map(({ id, ref }) => ask(ref, (reply) => ({ type: 'umount', reply })).catch(settle('Unmounting', id))));
      }
    }),
};
