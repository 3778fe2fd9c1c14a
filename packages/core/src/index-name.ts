/**
 * The rule for an Elasticsearch index name, in core so that the agent refuses a bad name while loading its
 * configuration (exit 2, before anything runs) with the same rule the exporter applies to its options,
 * without loading the exporter (an optional package).
 */

const INDEX_NAME = /^[a-z0-9][a-z0-9._-]*$/;

/** How to write a valid name, for messages. */
export const INDEX_NAME_RULE = 'Use lowercase letters, digits, ".", "_" and "-", not starting with "_" or "-"';

/** Undefined when `name` is a valid index name, else what is wrong with it. */
export function indexNameProblem(name: string): string | undefined {
  const valid = typeof name === 'string' && INDEX_NAME.test(name) && name !== '.' && name !== '..' && Buffer.byteLength(name) <= 255;
  return valid ? undefined : `is not a valid index name: ${JSON.stringify(name)}. ${INDEX_NAME_RULE} (at most 255 bytes).`;
}
