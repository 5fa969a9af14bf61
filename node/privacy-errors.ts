// The transaction manager's refusals in the node's vocabulary: one table from TxManagerError
// codes to NodeError codes, used where the node calls its TM (NodePrivacy.send). Owns nothing else.

import { TxManagerError, TxManagerErrorCode } from '../txmanager/index.js';
import { NodeError, NodeErrorCode } from './errors.js';

export function privacyError(error: unknown): unknown {
  if (error instanceof NodeError) return error;
  if (!(error instanceof TxManagerError)) return error;
  const meta = { tmCode: error.code, ...error.meta };
  switch (error.code) {
    case TxManagerErrorCode.RecipientUnavailable:
    case TxManagerErrorCode.RecipientRejected: {
      const nodeIds = Array.isArray(error.meta.nodeIds) ? (error.meta.nodeIds as string[]) : [];
      return new NodeError(
        NodeErrorCode.PrivacyRecipientUnavailable,
        `private transaction not sent: recipient node(s) ${nodeIds.join(', ') || '?'} ${error.code === TxManagerErrorCode.RecipientRejected ? 'refused the payload' : 'unavailable'} (${error.message}); retry when they are back, or use deliveryMode "queue"`,
        meta,
        { cause: error },
      );
    }
    case TxManagerErrorCode.UnknownRecipientKey:
      return new NodeError(
        NodeErrorCode.TxUnknownRecipient,
        `${error.message}; the keys of every member are listed at the transaction manager's GET /partyinfo/keys`,
        meta,
        { cause: error },
      );
    case TxManagerErrorCode.PayloadTooLarge:
      return new NodeError(NodeErrorCode.TxTooLarge, error.message, meta, { cause: error });
    case TxManagerErrorCode.InvalidRequest:
      return new NodeError(NodeErrorCode.TxMalformed, error.message, meta, { cause: error });
    default:
      return new NodeError(NodeErrorCode.PrivacyUnavailable, `transaction manager: ${error.message}`, meta, {
        cause: error,
      });
  }
}
