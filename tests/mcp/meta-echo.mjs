// A stdio MCP server written with the official TypeScript SDK for ckp's tests: its one tool, `meta`, answers the
// `_meta` object of the request that called it (where a client puts the W3C trace context, SEP-414).
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';

const server = new McpServer({ name: 'ckp-meta-echo', version: '1.0.0' });
server.registerTool('meta', { description: "Answers the request's _meta" }, async (extra) => ({
  content: [{ type: 'text', text: JSON.stringify(extra._meta ?? {}) }],
}));
await server.connect(new StdioServerTransport());
