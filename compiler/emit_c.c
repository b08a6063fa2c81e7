#include "nnc.h"
bool op_has_emitter(OpKind kind) { (void)kind; return kind != OPK_FLATTEN && kind != OPK_TAKE && kind != OPK_DROPOUT && kind != OPK_GLOBAL_AVGPOOL && kind != OPK_PARAM; }
bool emit_c(const Graph *g, const EmitOptions *opts, Buf *c_file, Buf *h_file) { (void)g; (void)opts; (void)c_file; (void)h_file; return false; }
