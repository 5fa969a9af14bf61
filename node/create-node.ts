// The one factory of a QuorateNode: the process (node/process.ts) and every test harness build a
// node here, from settings (who it is, and the options that differ from their modules' defaults:
// node/options.ts) and its IO edges. Owns only that assembly; it opens nothing itself.

import { QuorateNode, type NodeIo } from './node.js';
import { resolveNodeOptions, type NodeSettings } from './options.js';

export function createNode(settings: NodeSettings, io: NodeIo): QuorateNode {
  return new QuorateNode(resolveNodeOptions(settings), io);
}
