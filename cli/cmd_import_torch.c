/* cmd_import_torch.c - `specssl import-torch`: the published SpecRRMoco
 * weights (flat .f32.bin + manifest) to a specssl checkpoint (and the linear
 * probe to a linear model file). All work is in encoder_import_specrrmoco. */
#include <stdio.h>

#include "cmd_util.h"
#include "sp_config.h"
#include "sp_encoder.h"

int cmd_import_torch(int argc, char **argv);

int cmd_import_torch(int argc, char **argv) {
    const char *bin = NULL, *manifest = NULL, *out = NULL;
    const char *lin_bin = NULL, *lin_manifest = NULL, *lin_out = NULL;
    const CmdOpt opts[] = {
        {"bin", 0, CMD_STR, "W.f32.bin", "flat float32 export of the MoCo checkpoint", &bin, 1},
        {"manifest", 0, CMD_STR, "W.manifest.tsv",
         "its manifest (name, dtype, shape, offset, count)", &manifest, 1},
        {"out", 'o', CMD_STR, "CKPT.h5", "specssl checkpoint to write (kind pretrain)", &out, 1},
        {"linear-bin", 0, CMD_STR, "L.f32.bin", "flat export of the linear probe (optional)",
         &lin_bin, 0},
        {"linear-manifest", 0, CMD_STR, "L.manifest.tsv", "its manifest", &lin_manifest, 0},
        {"linear-out", 0, CMD_STR, "LINEAR.h5", "linear model file to write (kind linear)",
         &lin_out, 0},
    };
    const CmdSpec spec = {
        "import-torch",
        "--bin W.f32.bin --manifest W.manifest.tsv --out CKPT.h5 "
        "[--linear-bin L.f32.bin --linear-manifest L.manifest.tsv --linear-out LINEAR.h5]",
        "convert the published SpecRRMoco weights to a specssl checkpoint",
        "Checks the import invariants of the published checkpoint (399,328 floats, the\n"
        "70,825-float encoder_q block, unit-norm queue columns, queue_ptr, BN counters),\n"
        "then writes encoder_q/encoder_k (ConvSC, reference architecture), the projection\n"
        "heads proj_q/proj_k, the relational-reasoning heads under heads/, /queue and\n"
        "/queue_ptr. The encoder config stored with it is the reference one (the defaults\n"
        "of encoder.convsc.*). Imported weights carry no input normalisation: spectra are\n"
        "fed as stored (use data normalised like the original training data).",
        opts, CMD_NOPTS(opts), 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) return rc;
    int nl = (lin_bin != NULL) + (lin_manifest != NULL) + (lin_out != NULL);
    if (nl != 0 && nl != 3) {
        fprintf(stderr, "specssl: error: import-torch: --linear-bin, --linear-manifest and "
                        "--linear-out go together\n");
        return 2;
    }
    /* The reference encoder (defaults of encoder.*); the published weights
     * come with no input normalisation, which the stored config records. */
    const char *setv[] = {"encoder.arch=convsc", "data.normalise=none"};
    CmdStrList sets = {setv, 2, 2};
    SpConfig *c = NULL;
    SpStatus st = cmd_load_config(&c, NULL, &sets);
    if (st == SP_OK) {
        cmd_banner("import-torch", c, &sets);
        SpImportOpts o = {bin, manifest, lin_bin, lin_manifest, lin_out, out};
        st = encoder_import_specrrmoco(&o, c);
    }
    sp_config_free(c);
    if (st == SP_OK) {
        printf("wrote %s (encoder_q, encoder_k, proj_q, proj_k, heads, queue)\n", out);
        if (lin_out) printf("wrote %s (linear probe)\n", lin_out);
    }
    return cmd_finish(st);
}
