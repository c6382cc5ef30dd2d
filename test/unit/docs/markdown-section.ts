/**
 * The text of `page` from the heading `heading` matches (at a line start) up to the next
 * heading of the same or a higher level; "" when there is no such heading.
 */
export function markdownSection(page: string, heading: RegExp): string {
  const match = heading.exec(page);
  if (!match) return "";
  const level = /^#+/.exec(match[0])?.[0].length ?? 2;
  const rest = page.slice(match.index + match[0].length);
  const end = new RegExp(`^#{1,${level}} `, "m").exec(rest);
  return match[0] + (end ? rest.slice(0, end.index) : rest);
}
