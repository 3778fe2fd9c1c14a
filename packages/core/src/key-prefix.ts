/**
 * The rule for the S3 key prefix bundles are published under, in core so that the agent refuses a bad
 * `s3://bucket/prefix` while loading its configuration with the same rule fetcher-s3 applies (without loading it).
 */

/** Undefined when `prefix` (leading and trailing slashes aside) is a usable key prefix, else what is wrong. */
export function keyPrefixProblem(prefix: string): string | undefined {
  const trimmed = typeof prefix === 'string' ? prefix.replace(/^\/+|\/+$/g, '') : '';
  if (!trimmed) return 'is empty';
  if (trimmed.split('/').some((part) => part === '' || part === '.' || part === '..')) return 'has an empty, "." or ".." path segment';
  return undefined;
}
