// The one error type of NPK reading, verification and packing. Its message
// names the file part and the rule that failed ("manifest.yaml: entry is
// compressed (method 8); NPK entries must be Stored"). The stable `code`
// lets callers (repositories, the mount pool) tell kinds apart; across
// threads it travels as data ({code, message}).

export type NpkErrorCode =
  | 'npk_io' // the file cannot be read
  | 'npk_zip' // not a zip, truncated, overlapping or duplicated entries, bad sizes
  | 'npk_entry' // a required entry is missing or stored wrongly
  | 'npk_version' // the zip comment's format version is missing or too old
  | 'npk_signature' // signature.yaml missing, malformed or invalid
  | 'npk_hash' // a hash in signature.yaml does not match
  | 'npk_manifest' // manifest.yaml does not parse or validate
  | 'npk_verity' // bad verity superblock or layout
  | 'verity_mismatch' // a block of fs.img or its hash tree does not match
  | 'npk_pack' // packing failed (mksquashfs, keys, inputs)
  | 'npk_key'; // a key file is missing or malformed

export class NpkError extends Error {
  override name = 'NpkError';
  constructor(
    readonly code: NpkErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The data form for crossing threads (Piscina drops custom properties of thrown errors). */
  toData(): { code: NpkErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}
