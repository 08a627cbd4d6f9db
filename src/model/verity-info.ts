// What the package format knows about an image's dm-verity hash tree, shared by
// the NPK reader (npk/), the mounter (actors/) and the machines' contracts.

/** Verity facts of a signed NPK (from its signature and superblock). */
export interface VerityInfo {
  /** Root hash, lowercase hex, from signature.yaml. */
  rootHash: string;
  /** Salt, lowercase hex, from the superblock. */
  salt: string;
  /** Number of 4096-byte data blocks (== verityOffset / 4096). */
  dataBlocks: number;
  /** Offset of the verity superblock inside fs.img (the squashfs size S). */
  verityOffset: number;
}
