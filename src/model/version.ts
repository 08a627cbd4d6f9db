/** The version our console announces and writes into NPK zip comments. */
export const VERSION = '0.9.3';
/** Clients and NPKs must satisfy this (>= major.minor of VERSION). */
export const COMPATIBLE = '>=0.9';
