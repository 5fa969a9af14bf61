// Transcript tests (etcd-io/raft's datadriven "interaction" tests, in miniature): a small script
// drives an in-process network; every message delivered and every status asked for is printed,
// and the output must equal the transcript recorded in test/consensus/testdata/*.txt.
// Re-record on purpose with UPDATE_TRANSCRIPTS=1 npx vitest run test/consensus/transcript.test.ts,
// then read the diff: a changed transcript is a changed behaviour.
//
// Script: lines starting with "> " are commands; the lines after one (up to the next command or a
// blank line) are its recorded output; lines starting with "#" are comments.
//   > cluster voters=1,2,3 [learners=4] [joiners=5]   (a fresh network, seed 1)
//   > campaign N | propose N DATA | read N CTX | transfer N TARGET
//   > conf N auto|implicit|explicit [+vID] [+lID] [-ID]...   (AddVoter, AddLearner, RemoveNode)
//   > stabilize            deliver until quiet, printing each message
//   > tick N [COUNT]       tick one node, no delivery      > tick-all COUNT (ticks + deliveries, silent)
//   > cut A B | isolate N | recover | status

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MessageType,
  RaftError,
  type Message,
} from '../../consensus/index.js';
import { bytes, id, Network, text } from './network.js';

const DATA_DIR = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

function describeMessage(m: Message): string {
  const parts = [`${m.from}->${m.to} ${m.type} term=${m.term}`];
  switch (m.type) {
    case MessageType.App:
      parts.push(`prev=(${m.index},${m.logTerm}) commit=${m.commit}`);
      if (m.entries.length > 0) {
        parts.push(
          `entries=[${m.entries.map((e) => `${e.index}/${e.term}${e.type === EntryType.ConfChange ? ':conf' : e.data.length > 0 ? `:${text(e.data)}` : ''}`).join(' ')}]`,
        );
      }
      break;
    case MessageType.AppResp:
      parts.push(`index=${m.index}`);
      if (m.reject) parts.push(`REJECT hint=(${m.rejectHint},${m.logTerm})`);
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      parts.push(`last=(${m.index},${m.logTerm})`);
      break;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      if (m.reject) parts.push('REJECT');
      break;
    case MessageType.Heartbeat:
      parts.push(`commit=${m.commit}`);
      break;
    case MessageType.Snap:
      parts.push(`snapshot=(${m.snapshot!.metadata.index},${m.snapshot!.metadata.term})`);
      break;
    case MessageType.ReadIndexResp:
      parts.push(`index=${m.index}`);
      break;
    default:
      break;
  }
  if (m.context && m.type !== MessageType.Vote && m.type !== MessageType.TransferLeader)
    parts.push(`ctx=${text(m.context)}`);
  return parts.join(' ');
}

function run(script: string): string {
  const out: string[] = [];
  let net: Network | undefined;
  const lines = script.split('\n');
  const need = (): Network => {
    if (!net) throw new Error('transcript: no cluster yet');
    return net;
  };
  for (const line of lines) {
    if (line.startsWith('#')) {
      out.push(line);
      continue;
    }
    if (line.trim() === '') {
      if (out.length > 0 && out[out.length - 1] !== '') out.push('');
      continue;
    }
    if (!line.startsWith('> ')) continue; // recorded output: regenerated below
    out.push(line);
    const [cmd, ...args] = line.slice(2).trim().split(/\s+/);
    const n = (i: number): number => Number(args[i]);
    try {
      switch (cmd) {
        case 'cluster': {
          const opt = Object.fromEntries(args.map((a) => a.split('=')));
          const list = (k: string): number[] => (opt[k] ? String(opt[k]).split(',').map(Number) : []);
          net = new Network({ voters: list('voters'), learners: list('learners'), joiners: list('joiners'), seed: 1 });
          net.onDeliver = (m) => out.push(describeMessage(m));
          net.logDeliveries = false;
          break;
        }
        case 'campaign':
          need().node(n(0)).campaign();
          break;
        case 'propose':
          need().node(n(0)).propose(bytes(args[1]));
          break;
        case 'read':
          need().node(n(0)).readIndex(bytes(args[1]));
          break;
        case 'transfer':
          need()
            .node(n(0))
            .transferLeadership(id(n(1)));
          break;
        case 'conf': {
          const transition = {
            auto: ConfChangeTransition.Auto,
            implicit: ConfChangeTransition.JointImplicit,
            explicit: ConfChangeTransition.JointExplicit,
          }[args[1]]!;
          const changes = args.slice(2).map((c) => {
            const type = c.startsWith('+v')
              ? ConfChangeType.AddVoter
              : c.startsWith('+l')
                ? ConfChangeType.AddLearner
                : ConfChangeType.RemoveNode;
            return { type, nodeId: id(Number(c.replace(/^[+-][vl]?/, ''))) };
          });
          need()
            .node(n(0))
            .proposeConfChange({ transition, changes, context: new Uint8Array(0) });
          break;
        }
        case 'stabilize': {
          const nw = need();
          nw.logDeliveries = true;
          nw.stabilize();
          nw.logDeliveries = false;
          break;
        }
        case 'tick':
          need().tick(n(0), args[1] ? n(1) : 1);
          break;
        case 'tick-all':
          need().tickAll(n(0));
          break;
        case 'cut':
          need().cut(n(0), n(1));
          break;
        case 'isolate':
          need().isolate(n(0));
          break;
        case 'recover':
          need().recover();
          break;
        case 'status':
          for (const nodeId of need().ids()) {
            const st = need().node(nodeId).status();
            const cs = st.confState;
            const conf = `voters=[${cs.voters}]${cs.votersOutgoing.length ? ` outgoing=[${cs.votersOutgoing}]` : ''}${cs.learners.length ? ` learners=[${cs.learners}]` : ''}`;
            const reads = need()
              .readStates.get(nodeId)!
              .map((r) => `${text(r.context)}@${r.index}`);
            out.push(
              `${nodeId}: ${st.softState.role} term=${st.hardState.term} lead=${st.softState.leader} commit=${st.hardState.commit} applied=${st.applied} last=${st.lastIndex} ${conf}` +
                `${need().appliedData(nodeId).length ? ` data=${need().appliedData(nodeId).join(',')}` : ''}${reads.length ? ` reads=${reads.join(',')}` : ''}`,
            );
          }
          break;
        default:
          throw new Error(`transcript: unknown command ${cmd}`);
      }
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      out.push(`error: ${e.code}`);
    }
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return `${out.join('\n')}\n`;
}

describe('transcripts', () => {
  for (const file of readdirSync(DATA_DIR).filter((f) => f.endsWith('.txt'))) {
    it(file, () => {
      const path = join(DATA_DIR, file);
      const recorded = readFileSync(path, 'utf8');
      const actual = run(recorded);
      if (process.env.UPDATE_TRANSCRIPTS === '1') writeFileSync(path, actual);
      else expect(actual).toBe(recorded);
    });
  }
});
