/* placeholder until the module lands */
typedef int sp_augment_placeholder_t;
