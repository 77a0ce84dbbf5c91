-- ---------------------------------------------------------------------------
-- pg_udaconnect: the JSON API of named places (45-places.sql) behind
-- udaconnect-httpd's /api/places routes, in the pattern of 60-http.sql:
-- complete response bodies, the verified caller first, SECURITY DEFINER,
-- EXECUTE for udaconnect_api and no table privilege.
--
-- Places are not personal data: every established caller (an organizer, or
-- an attendee with their person id) reads them all; an unknown caller gets
-- 42501 as everywhere.  Only organizers create and delete them.
--
-- A place as JSON: {id, name, kind, floor, area_m2, polygon}, polygon the
-- outline's vertices in order as [{latitude, longitude}, ...] (latitude =
-- y), the closing vertex not repeated; area_m2 rounded to 0.01 m².
-- POST takes the polygon in the same shape (the ring closes itself; a
-- repeated first vertex at the end is fine too).
-- ---------------------------------------------------------------------------

CREATE FUNCTION api_place_json(p udaconnect.place) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
               'id', p.id, 'name', p.name, 'kind', p.kind, 'floor', p.floor,
               'area_m2', round(p.area_m2::numeric, 2),
               'polygon', (SELECT json_agg(json_build_object('latitude', public.ST_Y(d.geom),
                                                             'longitude', public.ST_X(d.geom))
                                           ORDER BY d.path)
                             FROM public.ST_DumpPoints(public.ST_ExteriorRing(p.area)) d
                            WHERE d.path[1] < public.ST_NPoints(public.ST_ExteriorRing(p.area))))
$$;

-- The polygon of a request, [{latitude, longitude}, ...], as the WGS84
-- polygon create_place takes.  Errors name the vertex (1-based) and carry
-- COLUMN polygon; create_place checks the rest (valid, size, vertices).
CREATE FUNCTION api_place_polygon(polygon json) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    pts geometry[] := '{}';
    v   json;
    i   integer := 0;
    n   integer;
BEGIN
    IF json_typeof(polygon) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'polygon must be an array of vertices {"latitude": ..., "longitude": ...}'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
    END IF;
    n := json_array_length(polygon);
    -- 1000 vertices, and the first repeated to close the ring
    IF n < 3 OR n > 1001 THEN
        RAISE EXCEPTION 'polygon must have between 3 and 1000 vertices, not %', n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
    END IF;
    BEGIN
        FOR v IN SELECT e FROM json_array_elements(polygon) e LOOP
            i := i + 1;
            IF json_typeof(v) IS DISTINCT FROM 'object'
               OR json_typeof(v -> 'latitude') IS DISTINCT FROM 'number'
               OR json_typeof(v -> 'longitude') IS DISTINCT FROM 'number' THEN
                RAISE EXCEPTION 'polygon vertex % must be an object with the numbers latitude and longitude', i
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
            END IF;
            pts := pts || udaconnect.make_point((v ->> 'latitude')::float8, (v ->> 'longitude')::float8);
        END LOOP;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RAISE EXCEPTION 'polygon vertex %: %', i, SQLERRM
            USING ERRCODE = 'numeric_value_out_of_range', COLUMN = 'polygon';
    END;
    IF NOT (ST_X(pts[1]) = ST_X(pts[n]) AND ST_Y(pts[1]) = ST_Y(pts[n])) THEN
        pts := pts || pts[1];
    END IF;
    IF array_length(pts, 1) < 4 THEN
        RAISE EXCEPTION 'polygon must have at least 3 distinct vertices'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
    END IF;
    RETURN ST_MakePolygon(ST_MakeLine(pts));
END;
$$;

-- GET /api/places: every place, in id order.
CREATE FUNCTION api_places(caller_role text, caller_id integer) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_is_organizer(caller_role, caller_id);   -- 42501: unknown caller
    RETURN (SELECT coalesce(json_agg(udaconnect.api_place_json(p) ORDER BY p.id), '[]'::json)
              FROM udaconnect.place p);
END;
$$;

-- GET /api/places/{id}: NULL when there is no such place (-> 404).
CREATE FUNCTION api_place(caller_role text, caller_id integer, id integer) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_is_organizer(caller_role, caller_id);
    RETURN (SELECT udaconnect.api_place_json(p) FROM udaconnect.place p WHERE p.id = api_place.id);
END;
$$;

-- POST /api/places (organizers): exactly one of polygon (the shape above)
-- or latitude + longitude + radius_m (a round place, create_place_circle).
CREATE FUNCTION api_create_place(caller_role text, caller_id integer,
                                 name text, kind text, floor integer, polygon json,
                                 latitude float8, longitude float8, radius_m float8)
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_require_organizer(caller_role, caller_id, 'create places');
    IF polygon IS NOT NULL THEN
        IF latitude IS NOT NULL OR longitude IS NOT NULL OR radius_m IS NOT NULL THEN
            RAISE EXCEPTION 'give either polygon or latitude, longitude and radius_m, not both'
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
        END IF;
        RETURN udaconnect.api_place_json(
            udaconnect.create_place(name, kind, udaconnect.api_place_polygon(polygon), floor));
    END IF;
    IF latitude IS NULL AND longitude IS NULL AND radius_m IS NULL THEN
        RAISE EXCEPTION 'polygon (or latitude, longitude and radius_m) is required'
            USING ERRCODE = 'null_value_not_allowed', COLUMN = 'polygon';
    END IF;
    -- make_point and create_place_circle name a missing latitude, longitude, radius_m
    RETURN udaconnect.api_place_json(
        udaconnect.create_place_circle(name, kind, latitude, longitude, radius_m, floor));
END;
$$;

-- DELETE /api/places/{id} (organizers): {"deleted": true, "id": id}; NULL
-- when there is no such place (-> 404).
CREATE FUNCTION api_delete_place(caller_role text, caller_id integer, id integer) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_require_organizer(caller_role, caller_id, 'delete places');
    IF NOT udaconnect.delete_place(id) THEN
        RETURN NULL;
    END IF;
    RETURN json_build_object('deleted', true, 'id', id);
END;
$$;

REVOKE ALL ON FUNCTION api_place_json(udaconnect.place), api_place_polygon(json),
    api_places(text, integer), api_place(text, integer, integer),
    api_create_place(text, integer, text, text, integer, json, float8, float8, float8),
    api_delete_place(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_places(text, integer), api_place(text, integer, integer),
    api_create_place(text, integer, text, text, integer, json, float8, float8, float8),
    api_delete_place(text, integer, integer) TO udaconnect_api;
