-- Every change of the procedures table (import, document update, status change, delete, or an administrator's
-- SQL) tells every ckp process on the schema, inside the changing transaction, so each process drops its cached
-- procedure records and compiled procedures (the catalog) before it could serve a stale one for long.
CREATE FUNCTION ckp_procedures_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ckp_procs_' || md5(current_schema()), '');
    RETURN NULL;
END
$$;

CREATE TRIGGER procedures_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON procedures
    FOR EACH STATEMENT EXECUTE FUNCTION ckp_procedures_changed();
