// The state-chart inspector's public surface (src/runtime.ts loads it only when
// `[inspector] bind` is configured).
export { startInspector, parseBind, type Inspector, type InspectorOptions } from './inspector.js';
export { exportChart, runtimeMachine, type ChartFormat } from './export.js';
export { Recorder, type ActorInfo, type EventRecord } from './recorder.js';
