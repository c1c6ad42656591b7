"""Kingdee K/3 Cloud (金蝶云星空) WebAPI connector, registered as "kingdee".

Entities (SCHEMAS.md): customer `BD_Customer` (pk FCUSTID), sales_order `SAL_SaleOrder` (pk FID,
entries FSaleOrderEntry, sub-head FSaleOrderFinance), receipt `AR_RECEIVEBILL` (pk FID, entries
FRECEIVEBILLENTRY), material `BD_MATERIAL` (pk FMATERIALID). Records read have the nested shape of
a Save `Model`; writes take the same shape.

How it works
- Auth: a session login (`password` → AuthService.ValidateUser, `app_secret` → LoginByAppSecret,
  `sign` → LoginBySign) whose `kdservice-sessionid` rides as cookie and header; an answer with
  MsgCode 1 makes the shared client log in again and retry once. MsgCode 14 is "rate limited".
  LoginBySign is the default whenever app_id/app_secret are configured: Kingdee marks ValidateUser
  and LoginByAppSecret "not recommended" (vip.kingdee.com/knowledge/650369502764414208 and
  /650355755563987456, as summarised in shared/reference/api-contracts.md §1.1).
- Updates of documents with entries keep line identity (lines.py): each sent line carries its
  existing `FEntryID`, new lines go with 0, and `IsDeleteEntry` is true only for an update that
  removes lines on purpose (default true in Save deletes unsent lines: K-DOCS bill-operations.md;
  K-JAVA SaveRequest.java). A removal Kingdee refuses because the line has downstream documents
  is a permanent `line_has_downstream` dead letter. The refusal's message text is [unverifiable].
  The line ids come from the link, not from a read before each save: BatchSave asks for
  `NeedReturnFields: [FID, FSaleOrderEntry.FEntryID]` (entry fields as `entitykey.key`: the Save
  doc, as transcribed in K-DOCS bill-operations.md and xylfe.cn/retGnw_jndnfYOqVlbVDQ) and the
  saved ids go back as `WriteResult.target_meta`, keyed by source line key (lines.py). Assumed,
  unverified: NeedReturnData holds one object per saved record with the entry as a list of rows in
  line order, and Kingdee refuses an FEntryID the document no longer holds (the sandbox does, with
  its own text); either way the connector re-reads the lines when the link has none or an id is refused.
- Multi-organisation tenants (`use_org_number`): customers/materials allocated to several
  use-organisations exist once per org with one FNumber (K-DOCS master-data.md, Allocate), so
  every query of those forms adds `FUseOrgId.FNumber = <org>`.
- Reads: ExecuteBillQuery with FilterString on (FModifyDate, pk) and OrderString
  `FModifyDate ASC, <pk> ASC[, <entry>_FEntryID ASC]`, `Limit` = page size (≤ 2000). Paging is by
  keyset (each query re-anchored after the last whole document), not by StartRow offsets, which skip
  rows when a record is saved during the read; StartRow pages only through a single document
  whose lines exceed a page. Rows (one per entry line) are regrouped into documents and a page never
  ends in half a document; checkpoint = the last record's (FModifyDate, pk).
- Writes: BatchSave, one WriteResult per record by DIndex. Before creating, keys (FNumber/FBillNo)
  are looked up with `in (...)`; an existing record is updated instead (pk + NeedUpDateFields,
  limited to `WriteRequest.owned_fields` when set). A create refused because its number now exists
  (a retry after a lost answer, a crash) is resolved to an update of that record. With
  `auto_submit_audit`, saved documents are Submitted and Audited, and an update refused because
  the document is audited is UnAudited, saved and audited again.

Confirmed from the reference (`shared/reference/api-contracts.md` §1; SDK 8.2.0 source):
endpoint and service names; login parameter orders and LoginBySign's SHA256 sign; the LoginResult
fields (LoginResultType 1, KDSVCSessionId); the `kdservice-sessionid` cookie/header; HTTP 200 for
business errors; ResponseStatus with Errors/SuccessEntitys/DIndex and the MsgCode table (1 context
lost, 14 call limit); `{formid, data}` vs `{data:{FormId..}}` envelopes; ExecuteBillQuery fields
(FieldKeys comma string, FilterString, OrderString, StartRow, Limit ≤ 2000) and its bare 2-D array
answer / `[[{Result}]]` errors; one row per entry line; dotted reference keys; entry pk key
`<Entry>_FEntryID`; Save's Model/NeedUpDateFields/IsDeleteEntry and pk 0 = create; Submit/Audit/
UnAudit with `Ids` as a comma string; FDocumentStatus A/B/C/D; IsSuccess compared case-insensitively;
FModifyDate filterable, datetimes returned like `2025-01-02T14:49:44.537` (local time).

Assumed (not in the reference; the sandbox follows the same assumptions):
- FModifyDate is Asia/Shanghai local time (the server's zone); it changes on Save, not on Audit;
- BatchSave saves the valid records of a batch and reports the others (not all-or-nothing), and
  a duplicate FNumber/FBillNo fails that record (detected by looking the key up, not by the text);
- session-lost / throttle answers use the plain envelope on every service; MsgCode 6/13 are
  transient; a BatchSave with no successes, all errors at DIndex 0 and a MsgCode outside
  {0, 11, 12, 13} is a whole-request failure;
- no rate limit is published: 20 requests/s and 4 in flight by default (configurable per system);
  BatchSave chunk of 100 records (`batch_size`);
- FilterString datetime literals `yyyy-MM-dd HH:mm:ss.fff`; text compares case-insensitively
  (lookups fold case);
- record ids are Kingdee's integer ids as text; cursors compare (FModifyDate, numeric pk) on the
  server, so the engine's string order of ids agrees only while ids have the same number of
  digits (Kingdee's are 6-digit from 100001 for a long time).
"""

from erphub.connectors.kingdee.connector import KingdeeConnector
from erphub.connectors.kingdee.schema import SHAPES
from erphub.connectors.kingdee.settings import KingdeeSettings

__all__ = ["SHAPES", "KingdeeConnector", "KingdeeSettings"]
