/* aug_config.c - the `augment` config section: key registration (schema,
 * defaults, ranges, one doc line each) and the config -> AugSpec reader.
 *
 * Keys: augment.transforms (ordered list of names, or a single group name
 * G0|G1|G2|none), augment.p, and one subgroup per transform with its
 * parameters and an optional per-transform p (-1 = use augment.p). The
 * top-level reference_quirks (registered by core) switches window_slice to
 * the reference's overshooting grid (quirk 7).
 *
 * No allocation beyond the config module's; serial.
 */
#include <stdio.h>
#include <string.h>

#include "sp_augment.h"
#include "sp_config.h"

#define PER_P(name)                                                                  \
    {"augment." name ".p", SP_CFG_FLOAT, "-1.0", -1.0, 1.0, NULL,                    \
     "firing probability of " name "; -1 = use augment.p"}

static const SpCfgKey g_keys[] = {
    {"augment.transforms", SP_CFG_STRING_LIST, "[\"magnitude_warp\", \"time_warp\"]", 1.0, 0.0,
     NULL,
     "ordered transforms: magnitude_warp time_warp jitter scaling cutout window_slice "
     "window_warp shift baseline poisson crop_resize mask intensity, or one group "
     "G0|G1|G2|none (published run: magnitude_warp, time_warp)"},
    {"augment.p", SP_CFG_FLOAT, "1.0", 0.0, 1.0, NULL,
     "probability that each transform fires (reference: 1 in pretraining, 0.2 in its linear "
     "evaluation)"},

    PER_P("magnitude_warp"),
    {"augment.magnitude_warp.sigma", SP_CFG_FLOAT, "0.3", 0.0, 10.0, NULL,
     "sd of the knot multipliers N(1, sigma^2) of the magnitude spline"},
    {"augment.magnitude_warp.knots", SP_CFG_INT, "4", 0.0, 64.0, NULL,
     "interior knots; the spline goes through knots+2 points"},

    PER_P("time_warp"),
    {"augment.time_warp.sigma", SP_CFG_FLOAT, "0.2", 0.0, 10.0, NULL,
     "sd of the local speeds N(1, sigma^2) of the time-warp spline"},
    {"augment.time_warp.knots", SP_CFG_INT, "8", 0.0, 64.0, NULL,
     "interior knots; the speed spline goes through knots+2 points"},

    PER_P("jitter"),
    {"augment.jitter.sigma", SP_CFG_FLOAT, "0.1", 0.0, 1e6, NULL,
     "sd of the additive Gaussian noise per point"},

    PER_P("scaling"),
    {"augment.scaling.sigma", SP_CFG_FLOAT, "0.4", 0.0, 100.0, NULL,
     "sd of the global factor N(1, sigma^2)"},

    PER_P("cutout"),
    {"augment.cutout.ratio", SP_CFG_FLOAT, "0.1", 0.0, 0.99, NULL,
     "zeroed window: int(ratio*L) points"},

    PER_P("window_slice"),
    {"augment.window_slice.ratio", SP_CFG_FLOAT, "0.8", 0.01, 1.0, NULL,
     "slice ceil(ratio*L) points and stretch them back to L (1 = identity)"},

    PER_P("window_warp"),
    {"augment.window_warp.ratio", SP_CFG_FLOAT, "0.3", 0.01, 0.99, NULL,
     "warped window: ceil(ratio*L) points"},
    {"augment.window_warp.scale_low", SP_CFG_FLOAT, "0.7", 0.01, 10.0, NULL,
     "first of the two window scales (one picked at random per view)"},
    {"augment.window_warp.scale_high", SP_CFG_FLOAT, "1.5", 0.01, 10.0, NULL,
     "second of the two window scales"},

    PER_P("shift"),
    {"augment.shift.max", SP_CFG_FLOAT, "10.0", 0.0, 1e6, NULL,
     "largest shift along the axis, in points (uniform in [-max, max], edges repeat)"},
    {"augment.shift.integer", SP_CFG_BOOL, "false", 1.0, 0.0, NULL,
     "round the shift to whole points (else sub-point shift by linear interpolation)"},

    PER_P("baseline"),
    {"augment.baseline.degree", SP_CFG_INT, "2", 0.0, 16.0, NULL,
     "degree of the random polynomial baseline over the axis"},
    {"augment.baseline.amplitude", SP_CFG_FLOAT, "0.05", 0.0, 100.0, NULL,
     "largest baseline relative to the spectrum's range max-min"},

    PER_P("poisson"),
    {"augment.poisson.scale", SP_CFG_FLOAT, "0.01", 0.0, 1e6, NULL,
     "signal-dependent noise x + sqrt(max(x,0)*scale)*z (variance = scale*x)"},

    PER_P("crop_resize"),
    {"augment.crop_resize.min_ratio", SP_CFG_FLOAT, "0.8", 0.01, 1.0, NULL,
     "random crop of at least ceil(min_ratio*L) points, resampled back to L"},

    PER_P("mask"),
    {"augment.mask.bands", SP_CFG_INT, "1", 0.0, 64.0, NULL, "number of masked bands"},
    {"augment.mask.width", SP_CFG_FLOAT, "0.05", 0.0, 1.0, NULL,
     "band width as a fraction of L (int(width*L) points)"},
    {"augment.mask.fill", SP_CFG_STRING, "\"mean\"", 1.0, 0.0, "mean|zero|linear",
     "band content: its own mean, zero, or the line joining its neighbours"},

    PER_P("intensity"),
    {"augment.intensity.sigma", SP_CFG_FLOAT, "0.1", 0.0, 5.0, NULL,
     "log-normal global factor exp(sigma*z)"},
};

void augment_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

static double fparam(const SpConfig *cfg, const char *name, const char *param) {
    char key[128];
    snprintf(key, sizeof key, "augment.%s.%s", name, param);
    return sp_cfg_float(cfg, key);
}

static int iparam(const SpConfig *cfg, const char *name, const char *param) {
    char key[128];
    snprintf(key, sizeof key, "augment.%s.%s", name, param);
    return (int)sp_cfg_int(cfg, key);
}

static SpStatus fill_from_config(AugTransform *t, const SpConfig *cfg, double p_all, int quirks) {
    const char *name = aug_kind_name(t->kind);
    double pk = fparam(cfg, name, "p");
    t->p = pk >= 0.0 ? pk : p_all;
    switch (t->kind) {
    case SP_AUG_MAGNITUDE_WARP:
    case SP_AUG_TIME_WARP:
        t->sigma = fparam(cfg, name, "sigma");
        t->knots = iparam(cfg, name, "knots");
        break;
    case SP_AUG_JITTER:
    case SP_AUG_SCALING:
    case SP_AUG_INTENSITY: t->sigma = fparam(cfg, name, "sigma"); break;
    case SP_AUG_CUTOUT:
    case SP_AUG_WINDOW_SLICE: t->ratio = fparam(cfg, name, "ratio"); break;
    case SP_AUG_WINDOW_WARP:
        t->ratio = fparam(cfg, name, "ratio");
        t->scale_low = fparam(cfg, name, "scale_low");
        t->scale_high = fparam(cfg, name, "scale_high");
        break;
    case SP_AUG_SHIFT:
        t->max_shift = sp_cfg_float(cfg, "augment.shift.max");
        t->integer_shift = sp_cfg_bool(cfg, "augment.shift.integer");
        break;
    case SP_AUG_BASELINE:
        t->degree = iparam(cfg, name, "degree");
        t->amplitude = fparam(cfg, name, "amplitude");
        break;
    case SP_AUG_POISSON: t->scale = fparam(cfg, name, "scale"); break;
    case SP_AUG_CROP_RESIZE: t->ratio = fparam(cfg, name, "min_ratio"); break;
    case SP_AUG_MASK: {
        t->bands = iparam(cfg, name, "bands");
        t->ratio = fparam(cfg, name, "width");
        const char *f = sp_cfg_str(cfg, "augment.mask.fill");
        if (strcmp(f, "mean") == 0)
            t->fill = SP_AUG_FILL_MEAN;
        else if (strcmp(f, "zero") == 0)
            t->fill = SP_AUG_FILL_ZERO;
        else if (strcmp(f, "linear") == 0)
            t->fill = SP_AUG_FILL_LINEAR;
        else
            SP_FAIL(SP_ECONFIG, "%s: augment.mask.fill = '%s': expected mean, zero or linear",
                    sp_cfg_origin(cfg, "augment.mask.fill"), f);
        break;
    }
    default: break;
    }
    t->quirk_grid = quirks;
    return SP_OK;
}

SpStatus aug_spec_from_config(AugSpec *spec, const SpConfig *cfg) {
    memset(spec, 0, sizeof *spec);
    double p_all = sp_cfg_float(cfg, "augment.p");
    int quirks = sp_cfg_bool(cfg, "reference_quirks");
    const char *origin = sp_cfg_origin(cfg, "augment.transforms");
    int n = sp_cfg_list_len(cfg, "augment.transforms");
    if (n == 1) {
        const char *g = sp_cfg_str_at(cfg, "augment.transforms", 0);
        AugSpec tmp;
        if (aug_spec_group(&tmp, g, p_all)) {
            for (int i = 0; i < tmp.n; i++) {
                spec->t[spec->n] = tmp.t[i];
                SP_TRY(fill_from_config(&spec->t[spec->n], cfg, p_all, quirks));
                spec->n++;
            }
            return SP_OK;
        }
    }
    if (n > SP_AUG_MAX_TRANSFORMS)
        SP_FAIL(SP_ECONFIG, "%s: augment.transforms has %d entries, at most %d", origin, n,
                SP_AUG_MAX_TRANSFORMS);
    for (int i = 0; i < n; i++) {
        const char *name = sp_cfg_str_at(cfg, "augment.transforms", i);
        int k = aug_kind_from_name(name);
        if (k < 0) {
            int is_group = strcmp(name, "G0") == 0 || strcmp(name, "G1") == 0 ||
                           strcmp(name, "G2") == 0 || strcmp(name, "none") == 0;
            if (is_group)
                SP_FAIL(SP_ECONFIG,
                        "%s: augment.transforms[%d] = '%s': a group name must be the only entry "
                        "of the list",
                        origin, i, name);
            SP_FAIL(SP_ECONFIG,
                    "%s: augment.transforms[%d]: unknown transform '%s' (valid: %s; or a single "
                    "group G0, G1, G2, none)",
                    origin, i, name, aug_kind_names());
        }
        aug_transform_default(&spec->t[i], (AugKind)k);
        SP_TRY(fill_from_config(&spec->t[i], cfg, p_all, quirks));
        spec->n = i + 1;
    }
    /* Checks that do not depend on L (a long dummy length passes every
     * length-dependent one), so a bad value is reported at load time. */
    for (int i = 0; i < spec->n; i++) SP_TRY(aug_transform_check(&spec->t[i], 1 << 20));
    return SP_OK;
}
