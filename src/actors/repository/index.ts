// The repositories' door: NPKs kept in a directory or in memory.
export { contentsOf, FsRepository, npkInfo, type Repository, type RepositoryOptions, type StoredNpk } from './repository.js';
export { MemRepository } from './repository-mem.js';
