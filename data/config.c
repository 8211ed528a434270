/* config.c - the data.* configuration keys. */
#include <stdio.h>
#include <string.h>

#include "sp_data.h"

static const SpCfgKey k_data_keys[] = {
    {"data.spectra_path", SP_CFG_STRING, "\"/spectra\"", 1, 0, NULL,
     "HDF5 dataset holding the spectra [N, L] (NeXus: \"/entry/data/data\")"},
    {"data.labels_path", SP_CFG_STRING, "\"/labels\"", 1, 0, NULL,
     "HDF5 dataset of int labels [N] (-1 = unlabelled); \"\" ignores labels"},
    {"data.extvar_path", SP_CFG_STRING, "\"/extvar\"", 1, 0, NULL,
     "HDF5 dataset of the external variable [N] (int >= 0); \"\" ignores it"},
    {"data.axis_path", SP_CFG_STRING, "\"/axis\"", 1, 0, NULL,
     "HDF5 dataset of the x axis [L] (float64); \"\" ignores it"},
    {"data.load", SP_CFG_STRING, "\"auto\"", 1, 0, "auto|memory|stream",
     "auto: in memory when N*L*4 bytes <= max_memory_mb, else streamed by blocks"},
    {"data.max_memory_mb", SP_CFG_FLOAT, "2048.0", 1.0, 1e9, NULL,
     "memory budget (MiB) for holding the spectra in memory (data.load = auto)"},
    {"data.block_rows", SP_CFG_INT, "256", 1, 10000000, NULL,
     "streaming: rows per contiguous block read by hyperslab"},
    {"data.shuffle_window", SP_CFG_INT, "8", 1, 100000, NULL,
     "streaming: blocks held and shuffled together (buffer = window * block_rows rows)"},
    {"data.nonfinite", SP_CFG_STRING, "\"error\"", 1, 0, "error|drop",
     "rows with NaN/Inf: error (refuse the file) or drop (skip them, logged)"},
    {"data.normalise", SP_CFG_STRING, "\"global_minmax\"", 1, 0,
     "none|max|minmax|global_minmax|standardise",
     "max: x/max per spectrum; minmax: per spectrum to [0,1]; global_minmax: to [-1,1] "
     "with training min/max; standardise: per point with training mean/std"},
};

void data_config_register(void) {
    sp_config_register(k_data_keys, (int)(sizeof k_data_keys / sizeof k_data_keys[0]));
}

static SpStatus copy_str(char *dst, size_t n, const SpConfig *c, const char *key) {
    const char *v = sp_cfg_str(c, key);
    if (strlen(v) >= n) SP_FAIL(SP_ECONFIG, "%s: value too long (max %zu characters)", key, n - 1);
    snprintf(dst, n, "%s", v);
    return SP_OK;
}

SpStatus data_options_from_config(const SpConfig *c, SpDataOptions *o) {
    SP_TRY(copy_str(o->spectra_path, sizeof o->spectra_path, c, "data.spectra_path"));
    if (!o->spectra_path[0]) SP_FAIL(SP_ECONFIG, "data.spectra_path: must not be empty");
    SP_TRY(copy_str(o->labels_path, sizeof o->labels_path, c, "data.labels_path"));
    SP_TRY(copy_str(o->extvar_path, sizeof o->extvar_path, c, "data.extvar_path"));
    SP_TRY(copy_str(o->axis_path, sizeof o->axis_path, c, "data.axis_path"));
    const char *load = sp_cfg_str(c, "data.load");
    o->load = !strcmp(load, "memory") ? SP_LOAD_MEMORY : !strcmp(load, "stream") ? SP_LOAD_STREAM
                                                                                   : SP_LOAD_AUTO;
    o->max_memory_mb = sp_cfg_float(c, "data.max_memory_mb");
    o->block_rows = (int)sp_cfg_int(c, "data.block_rows");
    o->shuffle_window = (int)sp_cfg_int(c, "data.shuffle_window");
    o->nonfinite = !strcmp(sp_cfg_str(c, "data.nonfinite"), "drop") ? SP_NONFINITE_DROP
                                                                    : SP_NONFINITE_ERROR;
    return SP_OK;
}
