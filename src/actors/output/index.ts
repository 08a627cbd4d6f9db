// The output actor's door: container pipes read by a worker thread, kept in
// rings for logs, forwarded to the log and to attached clients.
export { defaultOutput, Output, type AttachedStream, type OutputSink } from './output.js';
export { LineSplitter, type OutputLine } from './output-lines.js';
