export {
  Fleet,
  DEFAULT_INDICES,
  MissingIndexError,
  UnreachableError,
  type FleetIndices,
  type HostRow,
  type LatestResult,
} from './queries.js';
export { main, FLEET_EXIT, type CliIo } from './cli.js';
